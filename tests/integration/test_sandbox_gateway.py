"""Integration tests for the sandbox payment gateway, served for real by uvicorn.

Callbacks go to a second app (a tiny receiver) served by uvicorn too, so signatures are
checked on the exact bytes that crossed a socket.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.gateway import (
    CALLBACK_ID_HEADER,
    DEFAULT_CALLBACK_SECRET,
    LEDGER_COLUMNS,
    LEDGER_FILE,
    SIGNATURE_HEADER,
    add_business_days,
    create_app,
    sign,
)
from services.payout.providers.gateway import (
    SETTLEMENT_COLUMNS,
    PermanentProviderError,
    SandboxGateway,
    TransientProviderError,
    verify_signature,
)

START_TIMEOUT_SECONDS = 5.0
WAIT_SECONDS = 5.0
SECRET = "test-callback-secret"


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free port in a thread; yield its base URL."""
    # Binding the socket here (not in uvicorn) means the port can never be taken in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_started(server, thread)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_SECONDS)
        sock.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and thread.is_alive():
        if server.started:
            return
        time.sleep(0.02)
    raise RuntimeError("server did not start")


@contextmanager
def running_gateway(data_dir: Path, secret: str = SECRET) -> Iterator[httpx.Client]:
    """Serve the gateway; yield a client bound to it."""
    with (
        serving(create_app(data_dir, callback_secret=secret)) as url,
        httpx.Client(base_url=url, timeout=5.0) as client,
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        yield client


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A merchant's callback endpoint: records every request, failing the first few."""

    fail_first: int = 0
    url: str = ""
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/notify")
        async def notify(request: Request) -> JSONResponse:
            body = await request.body()
            with self.lock:
                self.received.append(Received(dict(request.headers), body))
                failing = len(self.received) <= self.fail_first
            if failing:
                return JSONResponse({"error": "try again"}, status_code=500)
            return JSONResponse({"code": "SUCCESS"})

        return app

    def calls(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int) -> list[Received]:
        wait_until(lambda: len(self.calls()) >= count, f"{count} callback(s)")
        return self.calls()


@contextmanager
def running_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(fail_first=fail_first)
    with serving(receiver.app()) as url:
        receiver.url = url + "/notify"
        yield receiver


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_gateway(tmp_path) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


def refund(number: str = "RF-0001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "merchant_refund_no": number,
        "amount": 1250,
        "currency": "CNY",
        "method": "wechat_pay",
        "payment_reference": "pay_42",
    }
    return {**body, **overrides}


def ledger_entries(client: httpx.Client) -> list[dict[str, Any]]:
    ledger = client.get("/ledger").json()
    assert ledger["count"] == len(ledger["entries"])
    entries: list[dict[str, Any]] = ledger["entries"]
    return entries


def control(client: httpx.Client, **switches: Any) -> dict[str, Any]:
    response = client.post("/control", json=switches)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


def status_of(client: httpx.Client, number: str) -> str:
    status: str = client.get(f"/v1/refunds/{number}").json()["status"]
    return status


def callbacks(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get("/callbacks").json()["callbacks"]
    return found


def settlement(client: httpx.Client, day: str) -> list[dict[str, str]]:
    response = client.get(f"/settlements/{day}.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames or ()) == SETTLEMENT_COLUMNS
    return list(reader)


def day_of(timestamp: str) -> str:
    return timestamp[:10]


# --- Idempotency and the synchronous default -------------------------------------------


def test_refund_is_recorded_once_and_listed_in_the_ledger(gateway: httpx.Client) -> None:
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["provider_reference"].startswith("gw_")
    assert len(body["provider_reference"]) == 3 + 24
    assert body["executed_at"].endswith("Z")
    assert body["created_at"] == body["completed_at"] == body["executed_at"]
    assert body["failure_reason"] is None
    assert body["notify_url"] is None
    assert body["arrival"]["summary"] == "same day"
    assert "Idempotent-Replayed" not in response.headers
    [entry] = ledger_entries(gateway)
    assert entry == {column: body[column] for column in LEDGER_COLUMNS}
    assert gateway.get("/v1/refunds/RF-0001").json() == body
    assert gateway.get("/v1/refunds/RF-unknown").status_code == 404
    assert callbacks(gateway) == []


async def test_the_payout_client_works_against_the_default_mode(gateway: httpx.Client) -> None:
    client = SandboxGateway(str(gateway.base_url))
    try:
        receipt = await client.refund(
            merchant_refund_no="RF-payout",
            amount=500,
            currency="CNY",
            method="card",
            reference="pay_7",
        )
        [entry] = ledger_entries(gateway)
        assert receipt.provider_reference == entry["provider_reference"]
        assert receipt.executed_at == datetime.fromisoformat(entry["executed_at"])

        control(gateway, fail_next=1, fail_status=429, retry_after_seconds=3)
        with pytest.raises(TransientProviderError) as transient:
            await client.refund(
                merchant_refund_no="RF-payout-2",
                amount=500,
                currency="CNY",
                method="card",
                reference="pay_8",
            )
        assert transient.value.retry_after == 3.0

        control(gateway, close_next=1)
        with pytest.raises(PermanentProviderError, match="ACCOUNT_CLOSED"):
            await client.refund(
                merchant_refund_no="RF-payout-3",
                amount=500,
                currency="CNY",
                method="card",
                reference="pay_9",
            )
    finally:
        await client.close()


def test_repeated_number_replays_the_original_entry(gateway: httpx.Client) -> None:
    first = gateway.post("/v1/refunds", json=refund()).json()

    again = gateway.post("/v1/refunds", json=refund())

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert len(ledger_entries(gateway)) == 1


def test_reused_number_with_other_amount_is_a_conflict(gateway: httpx.Client) -> None:
    gateway.post("/v1/refunds", json=refund())

    response = gateway.post("/v1/refunds", json=refund(amount=999))

    assert response.status_code == 409
    assert response.json() == {"error": "merchant_refund_no reused with different parameters"}
    [entry] = ledger_entries(gateway)
    assert entry["amount"] == 1250


def test_notify_url_is_not_part_of_a_refunds_identity(
    gateway: httpx.Client, receiver: Receiver
) -> None:
    first = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url)).json()

    again = gateway.post("/v1/refunds", json=refund(notify_url="http://elsewhere.invalid/x"))

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert again.json()["notify_url"] == receiver.url


def test_concurrent_posts_of_one_number_make_one_row(gateway: httpx.Client) -> None:
    # A small delay widens the window in which the requests overlap.
    control(gateway, delay_ms=100)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: gateway.post("/v1/refunds", json=refund()), range(8)))

    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["provider_reference"] for response in responses}) == 1
    assert sum("Idempotent-Replayed" in response.headers for response in responses) == 7
    assert len(ledger_entries(gateway)) == 1


@pytest.mark.parametrize(
    "bad_field",
    [
        {"amount": 12.5},
        {"amount": 1250.0},
        {"amount": True},
        {"amount": 0},
        {"currency": "cny"},
        {"method": "cash"},
        {"merchant_refund_no": "x" * 65},
        {"surprise": 1},
        {"notify_url": "ftp://merchant.example/notify"},
        {"notify_url": "merchant.example/notify"},
        {"notify_url": 42},
    ],
)
def test_invalid_body_is_rejected(gateway: httpx.Client, bad_field: dict[str, Any]) -> None:
    response = gateway.post("/v1/refunds", json=refund(**bad_field))

    assert response.status_code == 422
    assert ledger_entries(gateway) == []


# --- Arrival estimates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "summary", "low", "high"),
    [
        ("card", "3 business days", 3, 3),
        ("alipay", "same day", 0, 0),
        ("wechat_pay", "same day", 0, 0),
        ("bank_transfer", "1-3 business days", 1, 3),
        ("store_balance", "immediate", 0, 0),
    ],
)
def test_each_method_returns_its_arrival_estimate(
    gateway: httpx.Client, method: str, summary: str, low: int, high: int
) -> None:
    body = gateway.post("/v1/refunds", json=refund(method=method)).json()

    executed = date.fromisoformat(day_of(body["executed_at"]))
    assert body["arrival"] == {
        "summary": summary,
        "min_business_days": low,
        "max_business_days": high,
        "earliest": add_business_days(executed, low).isoformat(),
        "latest": add_business_days(executed, high).isoformat(),
    }
    assert gateway.get("/v1/refunds/RF-0001").json()["arrival"] == body["arrival"]


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2025, 1, 3), 0, date(2025, 1, 3)),  # Friday, same day
        (date(2025, 1, 3), 1, date(2025, 1, 6)),  # Friday + 1 -> Monday
        (date(2025, 1, 3), 3, date(2025, 1, 8)),  # Friday + 3 -> Wednesday
        (date(2025, 1, 4), 0, date(2025, 1, 4)),  # Saturday, same day stays Saturday
        (date(2025, 1, 4), 1, date(2025, 1, 6)),  # Saturday + 1 -> Monday
        (date(2025, 1, 8), 3, date(2025, 1, 13)),  # Wednesday + 3 -> Monday
    ],
)
def test_business_days_skip_weekends(start: date, days: int, expected: date) -> None:
    assert add_business_days(start, days) == expected


# --- Control switches ------------------------------------------------------------------


DEFAULT_CONTROL: dict[str, Any] = {
    "fail_next": 0,
    "fail_status": 503,
    "retry_after_seconds": 1,
    "fail_after_commit_next": 0,
    "delay_ms": 0,
    "timeout_next": 0,
    "timeout_after_commit_next": 0,
    "timeout_ms": 6000,
    "close_next": 0,
    "close_reason": "ACCOUNT_CLOSED",
    "abnormal_next": 0,
    "abnormal_reason": "USER_ACCOUNT_ABNORMAL",
    "async_mode": False,
    "completion_delay_ms": 1000,
    "drop_callbacks_next": 0,
    "callback_max_attempts": 5,
    "callback_retry_ms": 1000,
    "settlement_extra_lines": 0,
    "settlement_amount_overrides": {},
    "settlement_status_overrides": {},
    "settlement_omit": [],
    "fail_ratio": 0.0,
    "fail_after_commit_ratio": 0.0,
    "timeout_after_commit_ratio": 0.0,
    "drop_callbacks_ratio": 0.0,
    "seed": None,
}


def test_control_defaults_changes_and_reset(gateway: httpx.Client) -> None:
    assert gateway.get("/control").json() == DEFAULT_CONTROL

    changed = control(gateway, async_mode=True, settlement_omit=["RF-1"], close_next=2)

    assert changed == {
        **DEFAULT_CONTROL,
        "async_mode": True,
        "settlement_omit": ["RF-1"],
        "close_next": 2,
    }
    assert gateway.get("/control").json() == changed
    assert control(gateway, reset=True) == DEFAULT_CONTROL


@pytest.mark.parametrize(
    "bad_switch",
    [
        {"async_mode": "yes"},
        {"close_reason": "closed account"},
        {"fail_status": 200},
        {"callback_max_attempts": 0},
        {"settlement_status_overrides": {"RF-1": "refunded"}},
        {"no_such_switch": 1},
        {"fail_ratio": 1.5},
        {"drop_callbacks_ratio": -0.1},
    ],
)
def test_invalid_switches_are_rejected(gateway: httpx.Client, bad_switch: dict[str, Any]) -> None:
    assert gateway.post("/control", json=bad_switch).status_code == 422
    assert gateway.get("/control").json() == DEFAULT_CONTROL


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fail_next_answers_5xx_and_records_nothing(gateway: httpx.Client, status: int) -> None:
    control(gateway, fail_next=1, fail_status=status)

    failed = gateway.post("/v1/refunds", json=refund())

    assert failed.status_code == status
    assert "Retry-After" not in failed.headers
    assert ledger_entries(gateway) == []
    assert gateway.get("/control").json()["fail_next"] == 0
    assert gateway.post("/v1/refunds", json=refund()).status_code == 200


def test_fail_ratio_fails_that_share_of_calls_repeatably_and_records_nothing_for_them(
    gateway: httpx.Client,
) -> None:
    def run() -> list[int]:
        control(gateway, fail_ratio=0.3, seed=7)
        return [
            gateway.post("/v1/refunds", json=refund(f"RF-{n:04d}")).status_code for n in range(60)
        ]

    first = run()
    failed = first.count(503)
    assert set(first) == {200, 503}
    assert 8 <= failed <= 30  # 30 % of 60, give or take three standard deviations
    assert len(ledger_entries(gateway)) == 60 - failed
    assert run() == first  # the same seed fails the same calls (replays answer alike)
    assert len(ledger_entries(gateway)) == 60 - failed
    control(gateway, fail_ratio=0.0)
    assert gateway.post("/v1/refunds", json=refund("RF-0000")).status_code == 200


def test_timeout_after_commit_ratio_moves_the_money_then_stalls(gateway: httpx.Client) -> None:
    control(gateway, timeout_after_commit_ratio=1.0, timeout_ms=300)
    started = time.monotonic()

    response = gateway.post("/v1/refunds", json=refund())

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert [e["merchant_refund_no"] for e in ledger_entries(gateway)] == ["RF-0001"]


def test_fail_next_with_429_sets_retry_after(gateway: httpx.Client) -> None:
    control(gateway, fail_next=2, fail_status=429)

    assert gateway.post("/v1/refunds", json=refund()).headers["Retry-After"] == "1"
    control(gateway, retry_after_seconds=30)
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert ledger_entries(gateway) == []
    assert control(gateway, reset=True)["fail_status"] == 503


def test_fail_after_commit_loses_the_answer_but_not_the_refund(gateway: httpx.Client) -> None:
    control(gateway, fail_after_commit_next=1)

    lost = gateway.post("/v1/refunds", json=refund())
    assert lost.status_code == 503
    [recorded] = ledger_entries(gateway)

    retry = gateway.post("/v1/refunds", json=refund())

    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["provider_reference"] == recorded["provider_reference"]
    assert len(ledger_entries(gateway)) == 1


def test_slow_answer_comes_after_the_delay(gateway: httpx.Client) -> None:
    control(gateway, delay_ms=300)

    started = time.monotonic()
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_without_moving_money(gateway: httpx.Client) -> None:
    control(gateway, timeout_next=2, timeout_ms=600)
    impatient = httpx.Client(base_url=gateway.base_url, timeout=0.2)

    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/refunds", json=refund())
    started = time.monotonic()
    patient = gateway.post("/v1/refunds", json=refund())

    assert patient.status_code == 504
    assert time.monotonic() - started >= 0.6
    assert patient.json() == {"error": "injected timeout: nothing was recorded"}
    assert ledger_entries(gateway) == []
    assert gateway.get("/v1/refunds/RF-0001").status_code == 404
    retry = gateway.post("/v1/refunds", json=refund())
    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry.headers


def test_timeout_after_moving_money(gateway: httpx.Client) -> None:
    control(gateway, timeout_after_commit_next=1, timeout_ms=600)
    impatient = httpx.Client(base_url=gateway.base_url, timeout=0.2)

    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/refunds", json=refund())

    [recorded] = ledger_entries(gateway)  # the money moved although the caller saw nothing
    assert status_of(gateway, "RF-0001") == "success"
    retry = gateway.post("/v1/refunds", json=refund())
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["provider_reference"] == recorded["provider_reference"]


@pytest.mark.parametrize(
    ("switches", "status", "reason"),
    [
        ({"close_next": 1}, "closed", "ACCOUNT_CLOSED"),
        ({"close_next": 1, "close_reason": "CARD_EXPIRED"}, "closed", "CARD_EXPIRED"),
        ({"abnormal_next": 1}, "abnormal", "USER_ACCOUNT_ABNORMAL"),
    ],
)
def test_permanent_failure_ends_the_refund(
    gateway: httpx.Client, switches: dict[str, Any], status: str, reason: str
) -> None:
    control(gateway, **switches)

    failed = gateway.post("/v1/refunds", json=refund())

    assert failed.status_code == 402
    body = failed.json()
    assert body["error"] == f"refund {status}: {reason}"
    assert body["status"] == status
    assert body["failure_reason"] == reason
    assert body["executed_at"] is None
    assert body["completed_at"] is not None
    assert body["arrival"] is None
    replay = gateway.post("/v1/refunds", json=refund())
    assert replay.status_code == 402
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == body
    queried = gateway.get("/v1/refunds/RF-0001")
    assert queried.status_code == 200
    assert queried.json() == {key: value for key, value in body.items() if key != "error"}
    assert ledger_entries(gateway) == []
    # The token was consumed: the next refund succeeds.
    assert gateway.post("/v1/refunds", json=refund("RF-0002")).status_code == 200


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


# --- Durability ------------------------------------------------------------------------


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as client:
        original = client.post("/v1/refunds", json=refund()).json()

    with running_gateway(tmp_path) as client:
        assert client.get("/ledger").json()["count"] == 1
        replay = client.post("/v1/refunds", json=refund())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == original


def test_processing_refund_completes_after_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    with running_gateway(tmp_path) as client:
        control(client, async_mode=True, completion_delay_ms=500)
        accepted = client.post("/v1/refunds", json=refund(notify_url=receiver.url)).json()
        assert accepted["status"] == "processing"
    assert receiver.calls() == []

    with running_gateway(tmp_path) as client:
        [call] = receiver.wait_for(1)
        assert call.json()["data"]["status"] == "success"
        assert call.json()["data"]["provider_reference"] == accepted["provider_reference"]
        assert status_of(client, "RF-0001") == "success"
        assert len(ledger_entries(client)) == 1


def test_a_ledger_of_the_first_schema_is_migrated(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / LEDGER_FILE) as conn:
        conn.execute(
            "CREATE TABLE refunds (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " merchant_refund_no TEXT NOT NULL UNIQUE, provider_reference TEXT NOT NULL UNIQUE,"
            " amount INTEGER NOT NULL, currency TEXT NOT NULL, method TEXT NOT NULL,"
            " payment_reference TEXT NOT NULL, executed_at TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO refunds (merchant_refund_no, provider_reference, amount, currency,"
            " method, payment_reference, executed_at) VALUES"
            " ('RF-0001', 'gw_old', 1250, 'CNY', 'wechat_pay', 'pay_42',"
            " '2025-01-03T10:00:00.000000Z')"
        )
    conn.close()

    with running_gateway(tmp_path) as client:
        assert ledger_entries(client) == [
            {
                "merchant_refund_no": "RF-0001",
                "provider_reference": "gw_old",
                "amount": 1250,
                "currency": "CNY",
                "method": "wechat_pay",
                "payment_reference": "pay_42",
                "executed_at": "2025-01-03T10:00:00.000000Z",
            }
        ]
        replay = client.post("/v1/refunds", json=refund())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["status"] == "success"
        assert replay.json()["completed_at"] == "2025-01-03T10:00:00.000000Z"
        assert [row["merchant_refund_no"] for row in settlement(client, "2025-01-03")] == [
            "RF-0001"
        ]
        assert client.post("/v1/refunds", json=refund("RF-0002")).status_code == 200
        assert len(ledger_entries(client)) == 2


# --- Settlement reports ----------------------------------------------------------------


def _settle_a_day(gateway: httpx.Client) -> tuple[str, dict[str, dict[str, Any]]]:
    """Two successes, one closed and one still processing; the day and the refunds."""
    made = {
        "RF-A": gateway.post("/v1/refunds", json=refund("RF-A", amount=100)).json(),
        "RF-B": gateway.post("/v1/refunds", json=refund("RF-B", method="card")).json(),
    }
    control(gateway, close_next=1)
    made["RF-C"] = gateway.post("/v1/refunds", json=refund("RF-C", amount=300)).json()
    control(gateway, async_mode=True, completion_delay_ms=600_000)
    assert gateway.post("/v1/refunds", json=refund("RF-D")).json()["status"] == "processing"
    control(gateway, async_mode=False)
    return day_of(made["RF-A"]["completed_at"]), made


def _line(refund_view: dict[str, Any]) -> dict[str, str]:
    return {column: str(refund_view[column]) for column in SETTLEMENT_COLUMNS}


def test_settlement_lists_the_refunds_completed_that_day(gateway: httpx.Client) -> None:
    day, made = _settle_a_day(gateway)

    lines = settlement(gateway, day)

    expected = [_line(view) for view in made.values() if day_of(view["completed_at"]) == day]
    assert lines == expected
    assert "RF-D" not in {line["merchant_refund_no"] for line in lines}  # still processing
    assert {line["status"] for line in lines} <= {"success", "closed"}
    assert settlement(gateway, "2001-01-01") == []
    response = gateway.get(f"/settlements/{day}.csv")
    assert response.text.splitlines()[0] == ",".join(SETTLEMENT_COLUMNS)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="settlement-{day}.csv"'
    )


@pytest.mark.parametrize("bad_day", ["2025-13-01", "20250101", "yesterday"])
def test_settlement_day_must_be_a_date(gateway: httpx.Client, bad_day: str) -> None:
    response = gateway.get(f"/settlements/{bad_day}.csv")

    assert response.status_code == 400
    assert response.json() == {"error": "settlement day must be a date: YYYY-MM-DD"}


def test_settlement_discrepancies_can_be_injected(gateway: httpx.Client) -> None:
    day, made = _settle_a_day(gateway)
    honest = settlement(gateway, day)
    ledger_before = ledger_entries(gateway)

    control(
        gateway,
        settlement_extra_lines=1,
        settlement_amount_overrides={"RF-A": 101},
        settlement_status_overrides={"RF-B": "closed"},
        settlement_omit=["RF-C"],
    )
    doctored = settlement(gateway, day)

    by_number = {line["merchant_refund_no"]: line for line in doctored}
    assert "RF-C" not in by_number
    assert by_number["RF-A"] == {**_line(made["RF-A"]), "amount": "101"}
    assert by_number["RF-B"] == {**_line(made["RF-B"]), "status": "closed"}
    [extra] = [line for number, line in by_number.items() if not number.startswith("RF-")]
    assert extra["merchant_refund_no"] == f"UNKNOWN-{day}-1"
    assert extra["provider_reference"].startswith("gw_")
    assert extra["provider_reference"] not in {view["provider_reference"] for view in made.values()}
    assert extra["completed_at"].startswith(day)
    assert settlement(gateway, day) == doctored  # stable across downloads
    [unknown] = settlement(gateway, "2001-01-01")  # an extra line even on an empty day
    assert unknown["merchant_refund_no"] == "UNKNOWN-2001-01-01-1"
    assert unknown["completed_at"] == "2001-01-01T23:59:59.000000Z"
    assert ledger_entries(gateway) == ledger_before  # only the report lies
    control(gateway, reset=True)
    assert settlement(gateway, day) == honest


# --- Signature helper ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "quote", "rate"),
    [("CNY", "USD", "0.1375"), ("USD", "CNY", "7.272727273"), ("CNY", "EUR", "0.128")],
)
def test_fx_rates_come_from_the_fixed_table_with_their_inverses(
    gateway: httpx.Client, base: str, quote: str, rate: str
) -> None:
    answer = gateway.get("/v1/fx/rates", params={"base": base, "quote": quote})
    assert answer.status_code == 200
    assert answer.json() == {
        "base": base,
        "quote": quote,
        "rate": rate,
        "source": "sandbox-fx",
        "as_of": "2026-01-02T00:00:00Z",
    }
    assert datetime.fromisoformat(answer.json()["as_of"]).utcoffset() is not None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"base": "CNY", "quote": "GBP"}, 404),
        ({"base": "CNY", "quote": "CNY"}, 404),
        ({"base": "cny", "quote": "USD"}, 400),
        ({"base": "CNY"}, 422),
    ],
)
def test_fx_rates_refuse_unknown_pairs(
    gateway: httpx.Client, params: dict[str, str], status: int
) -> None:
    answer = gateway.get("/v1/fx/rates", params=params)
    assert answer.status_code == status
    if status == 404:
        assert answer.json() == {"error": f"no rate for {params['base']}/{params['quote']}"}


async def test_the_payout_client_reads_a_rate(gateway: httpx.Client) -> None:
    client = SandboxGateway(str(gateway.base_url))
    try:
        rate = await client.rate("CNY", "USD")
        with pytest.raises(PermanentProviderError, match="CNY->GBP"):
            await client.rate("CNY", "GBP")
    finally:
        await client.close()
    assert (rate.base, rate.quote, rate.rate, rate.source) == (
        "CNY",
        "USD",
        Decimal("0.1375"),
        "sandbox-fx",
    )
    assert rate.at == datetime(2026, 1, 2, tzinfo=UTC)


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
