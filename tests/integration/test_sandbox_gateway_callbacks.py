"""Integration tests of the sandbox gateway's asynchronous completion and its signed
callbacks to a merchant's endpoint (a second app served by uvicorn): announced once, lost,
retried under the same id, given up; and the signature helper on known vectors."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path

import httpx

from sandbox.gateway import CALLBACK_ID_HEADER, DEFAULT_CALLBACK_SECRET, SIGNATURE_HEADER, sign
from services.payout.providers.gateway import verify_signature
from tests.support.sandbox_gateway import (
    SECRET,
    Receiver,
    callbacks,
    control,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    ledger_entries,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    refund,
    running_gateway,
    running_receiver,
    status_of,
    wait_until,
)

# --- Asynchronous completion and callbacks ---------------------------------------------


def test_async_refund_completes_later_with_a_signed_callback(
    gateway: httpx.Client, receiver: Receiver
) -> None:
    control(gateway, async_mode=True, completion_delay_ms=300)

    accepted = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url))

    assert accepted.status_code == 200
    pending = accepted.json()
    assert pending["status"] == "processing"
    assert pending["executed_at"] is None
    assert pending["completed_at"] is None
    assert pending["arrival"]["summary"] == "same day"
    assert status_of(gateway, "RF-0001") == "processing"
    assert ledger_entries(gateway) == []
    replay = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == pending

    [call] = receiver.wait_for(1)

    signature = call.headers[SIGNATURE_HEADER.lower()]
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    assert signature == f"t={timestamp},v1={sign(SECRET, timestamp, call.body)}"
    assert verify_signature(SECRET, signature, call.body, now=time.time())
    assert not verify_signature(DEFAULT_CALLBACK_SECRET, signature, call.body, now=time.time())
    event = call.json()
    assert call.headers[CALLBACK_ID_HEADER.lower()] == event["id"]
    assert event["id"].startswith("cb_")
    assert event["type"] == "refund.success"
    done = gateway.get("/v1/refunds/RF-0001").json()
    assert event["data"] == done
    assert done["status"] == "success"
    assert done["provider_reference"] == pending["provider_reference"]
    assert done["executed_at"] == done["completed_at"] == event["created_at"]
    completed = datetime.fromisoformat(done["completed_at"])
    assert (completed - datetime.fromisoformat(done["created_at"])).total_seconds() >= 0.3
    [entry] = ledger_entries(gateway)
    assert entry["provider_reference"] == pending["provider_reference"]
    [record] = callbacks(gateway)
    assert record["id"] == event["id"]
    assert record["state"] == "delivered"
    assert record["attempts"] == 1
    assert record["last_result"] == "HTTP 200"


def test_async_permanent_failure_is_announced(gateway: httpx.Client, receiver: Receiver) -> None:
    control(gateway, async_mode=True, completion_delay_ms=100, abnormal_next=1)

    accepted = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url))
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "processing"

    [call] = receiver.wait_for(1)

    event = call.json()
    assert event["type"] == "refund.abnormal"
    assert event["data"]["status"] == "abnormal"
    assert event["data"]["failure_reason"] == "USER_ACCOUNT_ABNORMAL"
    replay = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url))
    assert replay.status_code == 402
    assert ledger_entries(gateway) == []


def test_async_refund_without_notify_url_sends_nothing(gateway: httpx.Client) -> None:
    control(gateway, async_mode=True, completion_delay_ms=100)

    gateway.post("/v1/refunds", json=refund())

    wait_until(lambda: status_of(gateway, "RF-0001") == "success", "completion")
    assert callbacks(gateway) == []
    assert len(ledger_entries(gateway)) == 1


def test_synchronous_refund_with_notify_url_is_announced_too(
    gateway: httpx.Client, receiver: Receiver
) -> None:
    body = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url)).json()

    [call] = receiver.wait_for(1)

    assert call.json()["type"] == "refund.success"
    assert call.json()["data"] == body


def test_lost_callback_then_status_query_shows_success(
    gateway: httpx.Client, receiver: Receiver
) -> None:
    control(gateway, async_mode=True, completion_delay_ms=100, drop_callbacks_next=1)

    gateway.post("/v1/refunds", json=refund(notify_url=receiver.url))
    wait_until(lambda: status_of(gateway, "RF-0001") == "success", "completion")

    [record] = callbacks(gateway)
    assert record["state"] == "dropped"
    assert record["attempts"] == 0
    assert len(ledger_entries(gateway)) == 1
    # The next completion is announced again; the lost one never is.
    gateway.post("/v1/refunds", json=refund("RF-0002", notify_url=receiver.url))
    [call] = receiver.wait_for(1)
    assert call.json()["data"]["merchant_refund_no"] == "RF-0002"
    time.sleep(0.3)
    assert len(receiver.calls()) == 1


def test_failed_callback_is_retried_under_the_same_id(tmp_path: Path) -> None:
    with running_receiver(fail_first=2) as flaky, running_gateway(tmp_path) as gateway:
        control(gateway, callback_retry_ms=100)

        gateway.post("/v1/refunds", json=refund(notify_url=flaky.url))
        calls = flaky.wait_for(3)

        assert len({call.headers[CALLBACK_ID_HEADER.lower()] for call in calls}) == 1
        assert len({call.body for call in calls}) == 1
        for call in calls:
            assert verify_signature(
                SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body, now=time.time()
            )
        wait_until(lambda: callbacks(gateway)[0]["state"] == "delivered", "delivery")
        [record] = callbacks(gateway)
        assert record["attempts"] == 3
        assert record["last_result"] == "HTTP 200"


def test_callback_gives_up_after_the_last_attempt(tmp_path: Path) -> None:
    with running_receiver(fail_first=100) as broken, running_gateway(tmp_path) as gateway:
        control(gateway, callback_retry_ms=50, callback_max_attempts=2)

        gateway.post("/v1/refunds", json=refund(notify_url=broken.url))

        wait_until(lambda: callbacks(gateway)[0]["state"] == "failed", "giving up")
        [record] = callbacks(gateway)
        assert record["attempts"] == 2
        assert record["last_result"] == "HTTP 500"
        assert len(broken.calls()) == 2
        assert status_of(gateway, "RF-0001") == "success"


def test_unreachable_receiver_is_retried(gateway: httpx.Client) -> None:
    control(gateway, callback_retry_ms=50, callback_max_attempts=2)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]

    gateway.post("/v1/refunds", json=refund(notify_url=f"http://127.0.0.1:{closed_port}/n"))

    wait_until(lambda: callbacks(gateway)[0]["state"] == "failed", "giving up")
    assert callbacks(gateway)[0]["last_result"] == "ConnectError"


# --- Signatures ------------------------------------------------------------------------


def test_sign_matches_a_known_vector() -> None:
    # printf '1700000000.{"id":"cb_1"}' | openssl dgst -sha256 -hmac sandbox-dev-callback-secret
    assert sign(DEFAULT_CALLBACK_SECRET, 1_700_000_000, b'{"id":"cb_1"}') == (
        "c8d06701f66b2b844675aaa95c64a80b2ab9688fa7f060db21e98742dc1541df"
    )


def test_signature_rejects_a_tampered_body_and_other_mismatches() -> None:
    body = b'{"id":"cb_1","type":"refund.success","data":{"amount":1250}}'
    now = 1_700_000_000
    header = f"t={now},v1={sign(SECRET, now, body)}"

    assert verify_signature(SECRET, header, body, now=now)
    assert not verify_signature(SECRET, header, body.replace(b"1250", b"9250"), now=now)
    assert not verify_signature("other-secret", header, body, now=now)
    assert not verify_signature(SECRET, header, body, now=now + 301)
    assert verify_signature(SECRET, header, body, now=now + 300)
    assert not verify_signature(SECRET, f"t={now + 1},v1={sign(SECRET, now, body)}", body, now=now)
    rotated = f"t={now},v1={'0' * 64},v1={sign(SECRET, now, body)}"
    assert verify_signature(SECRET, rotated, body, now=now)
    for malformed in ["", "garbage", f"v1={sign(SECRET, now, body)}", f"t={now}", "t=x,v1=y"]:
        assert not verify_signature(SECRET, malformed, body, now=now)
