"""The README's way: `refunds dev` starts everything; a platform drives refunds over HTTP."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from refunds.devstack import Ports
from shared import staff_tokens as jwt
from tests.e2e.support import (
    Platform,
    accepts,
    assert_one_message_per_step,
)
from tests.support.factories import order, refund_body
from tests.support.identity import sign_in

pytestmark = [pytest.mark.e2e]
DEV_PROVIDERS = True  # the README's stack: the dev tenant's providers at the emulators


def by_bank(amount: int) -> dict[str, Any]:
    """A refund of an order paid by bank transfer, by a new customer."""
    body = refund_body(amount)
    body["order"]["payment"]["method"] = "bank_transfer"
    body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    return body


def test_refund_walks_from_request_to_paid_and_rejected(
    refunds_dev: tuple[Platform, subprocess.Popen[str], Ports],
) -> None:
    platform, process, ports = refunds_dev
    body = refund_body(11900)
    approved = platform.request_refund(11900, key="e2e-approved", body=body)
    late = refund_body(11900, reason="changed_mind")
    late["order"] = order(11900, delivered_days_ago=10)  # past the 7-day no-reason window
    rejected = platform.request_refund(11900, key="e2e-rejected", body=late)
    # A retried POST (same key, same body) answers the same refund, not a new one.
    assert platform.request_refund(11900, key="e2e-approved", body=body) == approved

    finals = platform.wait_final([approved, rejected], timeout=60)
    assert finals[approved]["status"] == "paid"
    assert finals[approved]["decision"]["rule"] == "auto_approve.within_limit"
    # The README's refund (Alipay) went to the dev tenant's Alipay account at the emulator.
    auditor = jwt.encode(jwt.staff_claims("audrey", ["auditor"], 600), jwt.DEV_JWT_SECRET)
    payout = httpx.get(
        f"http://127.0.0.1:{ports.payout}/v1/payouts/{finals[approved]['payout']['payout_id']}",
        headers={"Authorization": f"Bearer {auditor}"},
        timeout=10,
    ).json()
    assert [d["provider"] for d in payout["dispatches"]] == ["alipay"], payout["dispatches"]
    assert not finals[approved]["payout"]["provider_reference"].startswith("gw_")
    assert finals[rejected]["status"] == "rejected"
    assert finals[rejected]["decision"]["rule"] == "window.no_reason.closed"
    assert finals[rejected]["decision"]["policy_version"] == "2026-11-01"
    assert "7" in finals[rejected]["decision"]["explanation"]["en"]
    assert finals[rejected]["payout"] is None
    assert platform.ledger() == []  # nothing went to the sandbox gateway

    # received + approved + paid for one, received + rejected for the other.
    deadline = time.monotonic() + 30
    while len(platform.mail()) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    messages = platform.mail()
    assert len(messages) == 5, [m["Subject"] for m in messages]
    assert_one_message_per_step(messages)
    assert {str(m["To"]) for m in messages} == {"li.wei@example.com"}

    # Above the automatic limit a person decides: a reviewer, signed in at the stack's
    # identity provider (code flow with PKCE), approves over review's API with her token.
    # (By bank transfer from here on: the dev tenant has no provider for it, so the sandbox
    # gateway pays, and its ledger and fault switches show what happened.)
    manual = platform.request_refund(80000, key="e2e-manual", body=by_bank(80000))
    deadline = time.monotonic() + 30
    while platform.refund(manual)["status"] != "in_review" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert platform.refund(manual)["review"]["rule"] == "manual.over_limit"
    token = sign_in(f"http://127.0.0.1:{ports.identity}", "ann")["access_token"]
    approval = httpx.post(
        f"http://127.0.0.1:{ports.review}/v1/cases/{manual}/approve",
        json={"amount": {"amount": 80000, "currency": "CNY"}, "note": "photo checked"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert approval.status_code == 200, approval.text
    paid = platform.wait_final([manual], timeout=60)[manual]
    assert paid["status"] == "paid"
    assert paid["decision"]["decided_by"] == "ann"
    assert len(platform.ledger()) == 1

    # The provider closes the next refund: payout gives up, the refund shows payout_failed,
    # and finance retries it over payout's staff API until it is paid.
    platform.gateway.post("/control", json={"close_next": 1}).raise_for_status()
    failing = platform.request_refund(11900, key="e2e-payout-failed", body=by_bank(11900))
    failed = platform.wait_final([failing], timeout=60)[failing]
    assert failed["status"] == "payout_failed", failed
    finance = jwt.encode(jwt.staff_claims("zhao", ["finance"], 600), jwt.DEV_JWT_SECRET)
    retried = httpx.post(
        f"http://127.0.0.1:{ports.payout}/v1/payouts/{failed['payout']['payout_id']}/retry",
        json={},
        headers={"Authorization": f"Bearer {finance}"},
        timeout=10,
    )
    assert retried.status_code == 200, retried.text
    deadline = time.monotonic() + 60
    while platform.refund(failing)["status"] != "paid" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert platform.refund(failing)["status"] == "paid"
    assert len(platform.ledger()) == 2  # one payment each for the two paid by bank transfer

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    for port in (
        ports.broker,
        ports.intake,
        ports.review,
        ports.payout,
        ports.notify,
        ports.gateway,
        ports.smtp,
    ):
        assert not accepts(port), f"something still listens on {port} after Ctrl-C"
