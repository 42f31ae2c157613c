"""Stripe webhook verification: our verifier, the emulator's signer and Stripe's own SDK
(stripe-python's `WebhookSignature`, which nobody here wrote) must agree."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from sandbox.stripe import DEV_PREVIOUS_WEBHOOK_SECRET, DEV_WEBHOOK_SECRET, signature_header
from services.payout.providers.base import CallbackRefused
from services.payout.providers.stripe import PROVIDER, StripeAccount, StripeCallbacks

NOW = 1_760_000_000


def account(*secrets: str) -> StripeAccount:
    return StripeAccount(
        secret_key="sk_test_" + "a" * 24,  # type: ignore[arg-type]
        webhook_secrets=list(secrets),  # type: ignore[arg-type]
    )


def event(kind: str = "refund.updated", **refund: Any) -> bytes:
    obj = {
        "id": "re_3Abc",
        "object": "refund",
        "amount": 1250,
        "currency": "usd",
        "created": NOW - 60,
        "status": "succeeded",
        "metadata": {"merchant_refund_no": "po_" + "1" * 32, "tenant": "acme"},
        "payment_intent": "pi_1",
        **refund,
    }
    body = {"id": "evt_1Xyz", "object": "event", "type": kind, "created": NOW,
            "data": {"object": obj}}  # fmt: skip
    return json.dumps(body).encode()


def headers(body: bytes, *secrets: str, at: int = NOW) -> dict[str, str]:
    return {"Stripe-Signature": signature_header(secrets, at, body)}


def test_a_genuine_event_verifies_into_a_notification() -> None:
    body = event()
    note = StripeCallbacks(account(DEV_WEBHOOK_SECRET)).verify(
        headers(body, DEV_WEBHOOK_SECRET), body, NOW + 10
    )
    assert note.callback_id == "evt_1Xyz"
    assert (note.type, note.merchant_refund_no, note.method) == (
        "refund.updated", "po_" + "1" * 32, "card",
    )  # fmt: skip
    assert (note.receipt.status, note.receipt.amount, note.receipt.currency) == (
        "success", 1250, "USD",
    )  # fmt: skip
    assert note.receipt.provider_reference == "re_3Abc"


def test_a_failed_refund_event_carries_the_closed_receipt() -> None:
    body = event("refund.failed", status="failed", failure_reason="lost_or_stolen_card")
    note = StripeCallbacks(account(DEV_WEBHOOK_SECRET)).verify(
        headers(body, DEV_WEBHOOK_SECRET), body, NOW
    )
    assert (note.receipt.status, note.receipt.failure_reason) == ("closed", "lost_or_stolen_card")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", "bad-signature"),
        ("stale", "bad-signature"),
        ("future", "bad-signature"),
        ("wrong-secret", "bad-signature"),
        ("tampered", "bad-signature"),
        ("no-header", "bad-signature"),
        ("not-json", "malformed"),
        ("other-event", "malformed"),
        ("no-number", "malformed"),
    ],
)
def test_refusals_name_their_reason(case: str, reason: str) -> None:
    body = event()
    sent = headers(body, DEV_WEBHOOK_SECRET)
    now = NOW
    if case == "forged":
        sent = {"Stripe-Signature": f"t={NOW},v1={'0' * 64}"}
    elif case == "stale":
        now = NOW + 301
    elif case == "future":
        now = NOW - 301
    elif case == "wrong-secret":
        sent = headers(body, DEV_PREVIOUS_WEBHOOK_SECRET)
    elif case == "tampered":
        body = body.replace(b"1250", b"9250")
    elif case == "no-header":
        sent = {}
    elif case == "not-json":
        body = b"amount=1250"
        sent = headers(body, DEV_WEBHOOK_SECRET)
    elif case == "other-event":
        body = event("charge.succeeded")
        sent = headers(body, DEV_WEBHOOK_SECRET)
    elif case == "no-number":
        body = event(metadata={})
        sent = headers(body, DEV_WEBHOOK_SECRET)
    with pytest.raises(CallbackRefused) as refused:
        StripeCallbacks(account(DEV_WEBHOOK_SECRET)).verify(sent, body, now)
    assert refused.value.reason == reason


def test_during_a_secret_roll_either_secret_of_the_account_matches_any_v1() -> None:
    body = event()
    both = headers(body, DEV_WEBHOOK_SECRET, DEV_PREVIOUS_WEBHOOK_SECRET)
    # The account still holds only the old secret, or already both: each accepts.
    for secrets in (
        (DEV_PREVIOUS_WEBHOOK_SECRET,),
        (DEV_PREVIOUS_WEBHOOK_SECRET, DEV_WEBHOOK_SECRET),
    ):
        StripeCallbacks(account(*secrets)).verify(both, body, NOW)
    # Signed with the new secret only, an account with the old and the new accepts too.
    only_new = headers(body, DEV_WEBHOOK_SECRET)
    StripeCallbacks(account(DEV_PREVIOUS_WEBHOOK_SECRET, DEV_WEBHOOK_SECRET)).verify(
        only_new, body, NOW
    )


def test_stripes_sdk_verifies_the_emulators_signatures() -> None:
    body = event()
    now = int(time.time())
    header = signature_header((DEV_WEBHOOK_SECRET, DEV_PREVIOUS_WEBHOOK_SECRET), now, body)
    assert stripe.WebhookSignature.verify_header(body, header, DEV_WEBHOOK_SECRET, 300)
    assert stripe.WebhookSignature.verify_header(body, header, DEV_PREVIOUS_WEBHOOK_SECRET, 300)
    parsed = stripe.Webhook.construct_event(body, header, DEV_WEBHOOK_SECRET)
    assert (parsed.id, parsed.type) == ("evt_1Xyz", "refund.updated")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, DEV_WEBHOOK_SECRET, 300)


def test_our_verifier_accepts_a_header_made_by_stripes_sdk() -> None:
    body = event()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), DEV_WEBHOOK_SECRET, timestamp=NOW
    )
    note = StripeCallbacks(account(DEV_WEBHOOK_SECRET)).verify(
        {"stripe-signature": header}, body, NOW + 299
    )
    assert note.callback_id == "evt_1Xyz"


def test_provider_spec_answers_as_stripe_expects() -> None:
    assert PROVIDER.name == "stripe" and PROVIDER.methods == frozenset({"card"})
    assert (PROVIDER.answer.status_code, json.loads(PROVIDER.answer.body)) == (
        200, {"received": True},
    )  # fmt: skip
