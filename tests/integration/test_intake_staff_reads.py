"""Intake's staff read of one refund (`GET /v1/staff/refunds/{id}`): every staff role reads
any tenant's refund with its order lines and the customer's contact opened; after erasure the
contact reads `[erased]`; an unknown id is a 404; the platform's key and a token without a
staff role are refused; the reader is named in intake's audit stamp."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import shared.staff
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.support.factories import refund_body
from tests.support.intake import ACME, GLOBEX, Intake, serve_intake

ROLES = ("reviewer", "senior_reviewer", "finance", "auditor", "admin", "warehouse")


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 600), DEV_JWT_SECRET)}"}


@pytest.fixture(params=["sqlite", "postgres"])
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, request.param) as served:
        yield served


def _request(customer_id: str) -> dict[str, object]:
    body = refund_body(12900)
    body["order"]["customer_id"] = customer_id
    body["order"]["shipping_fee"] = {"amount": 1000, "currency": "CNY"}
    body["customer"] = {
        "name": "Li Wei",
        "email": "li.wei@example.com",
        "phone": "+8613800000000",
        "locale": "zh-CN",
    }
    return body


def test_every_staff_role_reads_the_refund_with_its_order_and_contact(intake: Intake) -> None:
    created = intake.create(_request(f"C-{uuid.uuid4().hex[:8]}"), headers=GLOBEX)
    path = f"/v1/staff/refunds/{created['id']}"
    for role in ROLES:
        answer = intake.client.get(path, headers=staff("ann", role))
        assert answer.status_code == 200, (role, answer.text)
    body = answer.json()
    assert body["id"] == created["id"] and body["tenant"] == "globex"  # any tenant's refund
    assert body["status"] == created["status"]
    assert body["customer"]["name"] == "Li Wei"
    assert body["customer"]["email"] == "li.wei@example.com"
    assert body["customer"]["phone"] == "+8613800000000"
    assert body["personal_data"] == "available"
    assert body["items"] == [{"sku": "TSHIRT-L-WHITE", "quantity": 1}]
    order = body["order"]
    assert order["id"] == created["order_id"] and order["paid"] == {
        "amount": 12900,
        "currency": "CNY",
    }
    assert order["shipping_fee"] == {"amount": 1000, "currency": "CNY"}
    assert [(line["sku"], line["name"], line["quantity"]) for line in order["lines"]] == [
        ("TSHIRT-L-WHITE", "T-shirt, L, white", 1)
    ]
    assert order["lines"][0]["unit_price"] == {"amount": 12900, "currency": "CNY"}


def test_the_platform_key_and_roleless_tokens_are_refused(intake: Intake) -> None:
    created = intake.create(_request("C-42"))
    path = f"/v1/staff/refunds/{created['id']}"
    assert intake.client.get(path).status_code == 401
    assert intake.client.get(path, headers=ACME).status_code == 401  # a platform is not staff
    forged = {"Authorization": f"Bearer {encode(staff_claims('ann', ['admin'], 600), 'x' * 32)}"}
    assert intake.client.get(path, headers=forged).status_code == 401


def test_an_unknown_refund_is_a_404(intake: Intake) -> None:
    for missing in (f"rf_{uuid.uuid4().hex}", "not-an-id"):
        answer = intake.client.get(f"/v1/staff/refunds/{missing}", headers=staff("ann", "admin"))
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_an_erased_customer_reads_erased_and_the_rest_stays(intake: Intake) -> None:
    customer_id = f"C-{uuid.uuid4().hex[:8]}"
    created = intake.create(_request(customer_id))
    erased = intake.client.post(
        f"/v1/customers/{customer_id}/erase",
        json={"tenant": "acme", "reason": "asked"},
        headers=staff("root", "admin"),
    )
    assert erased.status_code == 200, erased.text
    body = intake.client.get(
        f"/v1/staff/refunds/{created['id']}", headers=staff("ann", "reviewer")
    ).json()
    assert body["personal_data"] == "erased"
    for name in ("name", "email", "phone"):
        assert body["customer"][name] == "[erased]"
    assert "Li Wei" not in str(body) and "li.wei@example.com" not in str(body)
    assert body["amount"] == {"amount": 12900, "currency": "CNY"}  # the facts stay
    assert body["order"]["lines"][0]["sku"] == "TSHIRT-L-WHITE"


def test_the_reader_is_named_in_the_audit_stamp(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = intake.create(_request("C-42"))
    named: list[tuple[str, str | None]] = []

    def identify(actor: str, via: str | None = None) -> None:
        named.append((actor, via))

    monkeypatch.setattr(shared.staff, "identify", identify)
    answer = intake.client.get(
        f"/v1/staff/refunds/{created['id']}", headers=staff("li.wei", "auditor")
    )
    assert answer.status_code == 200
    assert named == [("staff:li.wei", "roles:auditor")]
