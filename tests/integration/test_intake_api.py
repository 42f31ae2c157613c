"""Intake's HTTP contract over a real store: auth, tenants, validation, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from tests.support.factories import refund_body

ACME = {"Authorization": "Bearer acme-key-0123456789abcdefghij"}
GLOBEX = {"Authorization": "Bearer globex-key-0123456789abcdefgh"}


@pytest.fixture(params=["sqlite", "postgres"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    store = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        store = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_intake",
        }
    settings = IntakeSettings(
        data_dir=tmp_path,
        relay_enabled=False,
        consumer_enabled=False,
        api_keys="acme:acme-key-0123456789abcdefghij,globex:globex-key-0123456789abcdefgh",
        **store,
    )
    service = build(settings)
    with TestClient(service.http) as test_client:
        yield test_client
    service.close()


def test_create_and_read_back(client: TestClient) -> None:
    response = client.post("/v1/refunds", json=refund_body(11900), headers=ACME)
    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["id"].startswith("rf_")
    assert refund["status"] == "submitted"
    assert refund["amount"] == {"amount": 11900, "currency": "CNY"}
    got = client.get(f"/v1/refunds/{refund['id']}", headers=ACME)
    assert got.status_code == 200
    assert got.json()["timeline"][0]["actor"] == "tenant:acme"


def test_no_or_bad_key_is_401_problem(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.post("/v1/refunds", json=refund_body(), headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"


def test_another_tenants_refund_is_404_not_403(client: TestClient) -> None:
    refund_id = client.post("/v1/refunds", json=refund_body(), headers=ACME).json()["id"]
    assert client.get(f"/v1/refunds/{refund_id}", headers=GLOBEX).status_code == 404
    assert client.get("/v1/refunds/rf_nothex", headers=ACME).status_code == 404
    assert client.get("/v1/refunds/../etc", headers=ACME).status_code == 404


def test_each_bad_field_is_named_and_nothing_is_stored(client: TestClient) -> None:
    body = refund_body(11900)
    body["amount"] = {"amount": 1.5, "currency": "CNY"}
    body["reason"] = "because"
    body["items"] = [{"sku": "NOT-IN-ORDER", "quantity": 1}]
    body["unknown"] = True
    response = client.post("/v1/refunds", json=body, headers=ACME | {"Idempotency-Key": "k-bad"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"amount.amount", "reason", "unknown"} <= fields
    # The same key with a valid body now creates the refund: the failure stored nothing.
    ok = client.post("/v1/refunds", json=refund_body(), headers=ACME | {"Idempotency-Key": "k-bad"})
    assert ok.status_code == 201


def test_cross_field_rules(client: TestClient) -> None:
    body = refund_body(11900)
    body["items"] = [{"sku": "NOT-IN-ORDER", "quantity": 1}]
    body["amount"] = {"amount": 11900, "currency": "USD"}
    body["customer"] = {"locale": "en"}
    response = client.post("/v1/refunds", json=body, headers=ACME)
    assert response.status_code == 422
    codes = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert codes == {
        ("items.0.sku", "not_in_order"),
        ("amount.currency", "currency_mismatch"),
        ("customer", "contact_required"),
    }


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/refunds", content=b"{not json", headers=ACME | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("malformed-json")


def test_idempotency_key_replays_and_refuses_a_different_body(client: TestClient) -> None:
    body = refund_body()
    first = client.post("/v1/refunds", json=body, headers=ACME | {"Idempotency-Key": "k1"})
    again = client.post("/v1/refunds", json=body, headers=ACME | {"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/refunds", json=refund_body(), headers=ACME | {"Idempotency-Key": "k1"})
    assert other.status_code == 409
    # Keys are per tenant: the same key from another platform is its own refund.
    theirs = client.post("/v1/refunds", json=body, headers=GLOBEX | {"Idempotency-Key": "k1"})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
