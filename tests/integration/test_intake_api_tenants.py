"""Intake's HTTP contract over SQLite and PostgreSQL: a refund created and read back, a
key required and tenants kept apart, and every route documented with examples and problems."""

from __future__ import annotations

import pytest

from services.intake.orders import Order
from tests.support.factories import refund_body
from tests.support.intake import ACME, GLOBEX, Intake
from tests.support.intake_api import (
    intake_fixture,  # noqa: F401 (a fixture, used by name)
)

# -- create and read ----------------------------------------------------------------------------


def test_create_and_read_back(intake: Intake) -> None:
    refund = intake.create(refund_body(11900))
    assert refund["id"].startswith("rf_") and refund["object"] == "refund"
    assert refund["status"] == "submitted"
    assert refund["amount"] == {"amount": 11900, "currency": "CNY"}
    got = intake.client.get(f"/v1/refunds/{refund['id']}", headers=ACME)
    assert got.status_code == 200
    assert got.json() == refund
    assert refund["timeline"][0]["actor"] == "tenant:acme"


@pytest.mark.parametrize("locale", ["en-US", "zh-Hans-CN", "fr"])
def test_any_language_tag_is_taken_as_the_customer_gave_it(intake: Intake, locale: str) -> None:
    body = refund_body(11900)
    body["customer"]["locale"] = locale
    refund = intake.create(body)
    assert refund["customer"]["locale"] == locale  # notify picks the nearest it writes in


# -- tenants ------------------------------------------------------------------------------------


def test_no_or_bad_key_is_401_problem(intake: Intake) -> None:
    refund = intake.create(refund_body())
    routes = [
        ("post", "/v1/refunds"),
        ("get", "/v1/refunds"),
        ("get", f"/v1/refunds/{refund['id']}"),
        ("post", f"/v1/refunds/{refund['id']}/withdraw"),
        ("get", f"/v1/refunds/{refund['id']}/events"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            response = intake.client.request(method, path, json=refund_body(), headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"


def test_a_tenant_never_sees_lists_or_changes_anothers_refunds(intake: Intake) -> None:
    theirs = intake.create(refund_body(), headers=ACME)
    rid = theirs["id"]
    before = intake.stored()
    for method, path, body in [
        ("get", f"/v1/refunds/{rid}", None),
        ("get", f"/v1/refunds/{rid}/events", None),
        ("post", f"/v1/refunds/{rid}/withdraw", {}),
        (
            "post",
            f"/v1/refunds/{rid}/evidence",
            {"evidence": [{"kind": "photo", "url": "https://x/y"}]},
        ),
        ("post", f"/v1/refunds/{rid}/appeal", {"statement": "please"}),
        ("post", f"/v1/refunds/{rid}/confirm-receipt", {}),
    ]:
        response = intake.client.request(method, path, json=body, headers=GLOBEX)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["type"].endswith("/not-found")
    assert intake.stored() == before
    assert intake.client.get("/v1/refunds", headers=GLOBEX).json()["data"] == []
    listed = intake.client.get(f"/v1/refunds?order_id={theirs['order_id']}", headers=GLOBEX)
    assert listed.json()["data"] == []
    # The same order id at another platform is another order with its own balance.
    mine = refund_body()
    mine["order"]["id"] = theirs["order_id"]
    assert intake.client.post("/v1/refunds", json=mine, headers=GLOBEX).status_code == 201
    # Other aggregates' ids (the order's is derivable) look like unknown refunds too.
    order_uid = Order.create_id("acme", theirs["order_id"])
    for bad in ("rf_nothex", "rf_" + "0" * 32, "../etc", "x" * 300, f"rf_{order_uid.hex}"):
        assert intake.client.get(f"/v1/refunds/{bad}", headers=ACME).status_code == 404


# -- the documented routes ------------------------------------------------------------------------


def test_openapi_documents_every_route_with_examples_and_problems(intake: Intake) -> None:
    spec = intake.client.get("/openapi.json").json()
    assert intake.client.get("/docs").status_code == 200
    paths = spec["paths"]
    expected = {
        ("post", "/v1/refunds"),
        ("get", "/v1/refunds"),
        ("get", "/v1/refunds/{refund_id}"),
        ("post", "/v1/refunds/{refund_id}/withdraw"),
        ("post", "/v1/refunds/{refund_id}/evidence"),
        ("post", "/v1/refunds/{refund_id}/appeal"),
        ("post", "/v1/refunds/{refund_id}/confirm-receipt"),
        ("get", "/v1/refunds/{refund_id}/events"),
    }
    assert expected <= {(m, p) for p, item in paths.items() for m in item}
    schemas = spec["components"]["schemas"]
    for method, path in expected:
        operation = paths[path][method]
        assert "401" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert "application/problem+json" in response["content"], (method, path, status)
        if method == "post":
            assert {"409", "422"} <= set(operation["responses"]), (method, path)
            body_ref = operation["requestBody"]["content"]["application/json"]["schema"]
            name = (
                body_ref.get("$ref", "").rsplit("/", 1)[-1]
                or body_ref["anyOf"][0]["$ref"].rsplit("/", 1)[-1]
            )
            assert schemas[name].get("examples"), name
        success = next(s for s in operation["responses"] if s.startswith("2"))
        ref = operation["responses"][success]["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ref.rsplit("/", 1)[-1]].get("examples"), (method, path)
