"""Review's staff API accepting the sandbox identity provider's access tokens: a person who
signed in through the provider (authlib's client, code flow with PKCE) works under their own
name; forged, foreign, expired and confused tokens are refused with nothing changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.contracts import (
    CustomerContact,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    envelope,
)
from shared.ids import public_id
from shared.settings import ServiceSettings, StaffSettings
from shared.staff import StaffAuth
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.support.identity import serve_identity, sign_in

SECRET = "oidc-test-hs256-secret-0123456789abcdef"


@dataclass
class Stack:
    issuer: str
    client: TestClient
    app: ReviewApplication

    def mint(self, sub: str, **claims: Any) -> str:
        """An access token from the provider's test control (signed with its real key)."""
        answer = httpx.post(f"{self.issuer}/sandbox/tokens", json={"sub": sub, **claims})
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def request(self, yuan: int) -> str:
        now = datetime.now(UTC)
        refund_id = public_id("rf", uuid.uuid4())
        money = MoneyModel(amount=yuan * 100, currency="CNY")
        event = RefundRequestedV1(
            refund_id=refund_id,
            tenant="acme",
            order_id=f"ORD-{uuid.uuid4().hex[:8]}",
            customer_id=f"C-{uuid.uuid4().hex[:8]}",
            amount=money,
            paid=money,
            payment=PaymentRoute(method="alipay", reference="2026110122001"),
            items=[RefundedItem(sku="TV-55", quantity=1)],
            reason="damaged",
            desired_outcome="full_refund",
            channel="app",
            customer=CustomerContact(email="li.wei@example.com"),
            requested_at=now,
            paid_at=now - timedelta(days=4),
            delivered_at=now - timedelta(days=2),
            order_lines=[
                OrderLine(sku="TV-55", category="electronics", quantity=1, unit_price=money)
            ],
        )
        message = envelope(
            event, source="intake", event_id=str(uuid.uuid4()), position=1, time=now,
            causation_id=None,
        )  # fmt: skip
        assert self.app.handle(message)
        return refund_id

    def approve(self, refund_id: str, token: str, yuan: int) -> httpx.Response:
        return self.client.post(
            f"/v1/cases/{refund_id}/approve",
            json={"amount": {"amount": yuan * 100, "currency": "CNY"}},
            headers={"Authorization": f"Bearer {token}"},
        )

    def events(self, refund_id: str) -> int:
        return len(list(self.app.repository.event_store.get(ReviewCase.create_id(refund_id))))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with serve_identity(tmp_path / "idp") as issuer:
        settings = StaffSettings(env="test", jwt_secret=SECRET, oidc_issuer=issuer)
        auth = StaffAuth(settings.staff_secret(), settings.oidc())
        store = ServiceSettings(env="test", data_dir=tmp_path)
        app = ReviewApplication(default_policy(), env=store_env(store, "review"))
        app.record_shipped_policy()
        try:
            with TestClient(staff_api(app, ReviewQueue(app), auth)) as client:
                yield Stack(issuer, client, app)
        finally:
            app.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _segment(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def test_a_signed_in_person_works_under_their_own_name(stack: Stack) -> None:
    ann = sign_in(stack.issuer, "ann")["access_token"]
    refund_id = stack.request(600)
    listed = stack.client.get("/v1/cases", headers=bearer(ann))
    assert listed.status_code == 200, listed.text
    assert refund_id in [entry["refund_id"] for entry in listed.json()["data"]]

    approved = stack.approve(refund_id, ann, 600)
    assert approved.status_code == 200, approved.text
    case = approved.json()
    # The actor is the person's username (preferred_username), not the provider's UUID sub.
    assert [a["person"] for a in case["approvals"]] == ["ann"]
    assert case["history"][-1]["action"] == "approval_added"
    assert case["history"][-1]["actor"] == "ann"

    # HS256 tokens of `refunds token` still work beside the provider's.
    hs = encode(staff_claims("al", ["auditor"], 600), SECRET)
    assert stack.client.get(f"/v1/cases/{refund_id}", headers=bearer(hs)).status_code == 200


def _forgeries(stack: Stack) -> dict[str, str]:
    jwks = httpx.get(f"{stack.issuer}/jwks").json()["keys"][0]
    claims = jwt.decode(stack.mint("ann"), RSAKey.import_key(jwks)).claims
    own_key = RSAKey.generate_key(2048)
    # Same kid as the provider's key, so the refusal is the signature's, not an unknown kid.
    forged = jwt.encode({"alg": "RS256", "kid": jwks["kid"], "typ": "at+jwt"}, claims, own_key)
    stranger = jwt.encode({"alg": "RS256", "kid": "not-theirs", "typ": "at+jwt"}, claims, own_key)
    unsigned = ".".join(
        [
            _segment(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()),
            _segment(json.dumps(claims).encode()),
            "",
        ]
    )
    # Algorithm confusion: HS256 "signed" with the provider's public key as the HMAC secret.
    public_pem = RSAKey.import_key(jwks).as_pem(private=False)
    signing_input = ".".join(
        [
            _segment(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwks["kid"]}).encode()),
            _segment(json.dumps(claims).encode()),
        ]
    )
    mac = hmac.digest(public_pem, signing_input.encode(), hashlib.sha256)
    confused = f"{signing_input}.{_segment(mac)}"
    return {
        "another issuer": stack.mint("ann", iss="http://127.0.0.1:9/realms/elsewhere"),
        "another audience": stack.mint("ann", aud="account"),
        "expired": stack.mint("ann", expires_in=-120),
        "a key not in the JWKS (same kid)": forged,
        "a key not in the JWKS (unknown kid)": stranger,
        "alg none": unsigned,
        "HS256 with the public key as secret": confused,
        "an ID token's typ": stack.mint("ann", typ="id+jwt"),
    }


def test_bad_tokens_are_refused_and_nothing_changes(stack: Stack) -> None:
    refund_id = stack.request(600)
    before = stack.events(refund_id)
    for what, token in _forgeries(stack).items():
        answer = stack.approve(refund_id, token, 600)
        assert answer.status_code == 401, f"{what}: {answer.status_code} {answer.text}"
        assert answer.headers["content-type"] == "application/problem+json", what
        assert answer.json()["type"].endswith("/unauthorized"), what
        listed = stack.client.get("/v1/cases", headers=bearer(token))
        assert listed.status_code == 401, what
    assert stack.events(refund_id) == before
    # The right token still works: the refusals did not stop the provider's keys being used.
    ann = stack.mint("ann")
    assert stack.approve(refund_id, ann, 600).status_code == 200


def test_a_role_without_the_right_is_403_and_the_case_is_unchanged(stack: Stack) -> None:
    refund_id = stack.request(600)
    audrey = sign_in(stack.issuer, "audrey")["access_token"]  # an auditor
    wu = stack.mint("wu")  # warehouse: no say in refund decisions
    no_staff_role = stack.mint("ann", roles=["offline_access", "uma_authorization"])
    before = stack.events(refund_id)
    refused = stack.approve(refund_id, audrey, 600)
    assert refused.status_code == 403, refused.text
    assert stack.approve(refund_id, wu, 600).status_code == 403
    nobody = stack.approve(refund_id, no_staff_role, 600)
    assert nobody.status_code == 403 and nobody.json()["type"].endswith("/forbidden")
    case = stack.client.get(f"/v1/cases/{refund_id}", headers=bearer(audrey))
    assert case.status_code == 200 and case.json()["state"] == "pending"
    assert case.json()["approvals"] == []
    # The auditor's and the warehouse's refused attempts are on record under their names
    # (as for HS256 tokens); the role-less token never reached the case.
    assert stack.events(refund_id) == before + 2
    refusals = [(h["action"], h["actor"]) for h in case.json()["history"][-2:]]
    assert refusals == [("refused", "audrey"), ("refused", "wu")]
