"""Integration tests for the sandbox payment gateway, served for real by uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sandbox.gateway import create_app

START_TIMEOUT_SECONDS = 5.0


@contextmanager
def running_gateway(data_dir: Path) -> Iterator[httpx.Client]:
    """Serve the gateway on a free port in a thread; yield a client bound to it."""
    # Binding the socket here (not in uvicorn) means the port can never be taken in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(data_dir), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            _wait_until_healthy(client, thread)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_SECONDS)
        sock.close()


def _wait_until_healthy(client: httpx.Client, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if client.get("/healthz").json() == {"status": "ok"}:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise RuntimeError("sandbox gateway did not become healthy")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_gateway(tmp_path) as client:
        yield client


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


def test_refund_is_recorded_once_and_listed_in_the_ledger(gateway: httpx.Client) -> None:
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["provider_reference"].startswith("gw_")
    assert len(body["provider_reference"]) == 3 + 24
    assert body["executed_at"].endswith("Z")
    assert "Idempotent-Replayed" not in response.headers
    [entry] = ledger_entries(gateway)
    assert entry == {key: value for key, value in body.items() if key != "status"}
    assert gateway.get("/v1/refunds/RF-0001").json() == body
    assert gateway.get("/v1/refunds/RF-unknown").status_code == 404


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


def test_concurrent_posts_of_one_number_make_one_row(gateway: httpx.Client) -> None:
    # A small delay widens the window in which the requests overlap.
    gateway.post("/control", json={"delay_ms": 100})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: gateway.post("/v1/refunds", json=refund()), range(8)))

    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["provider_reference"] for response in responses}) == 1
    assert sum("Idempotent-Replayed" in response.headers for response in responses) == 7
    assert len(ledger_entries(gateway)) == 1


def test_fail_next_answers_503_and_records_nothing(gateway: httpx.Client) -> None:
    gateway.post("/control", json={"fail_next": 1})

    failed = gateway.post("/v1/refunds", json=refund())

    assert failed.status_code == 503
    assert ledger_entries(gateway) == []
    assert gateway.get("/control").json()["fail_next"] == 0
    assert gateway.post("/v1/refunds", json=refund()).status_code == 200


def test_fail_next_with_429_sets_retry_after(gateway: httpx.Client) -> None:
    gateway.post("/control", json={"fail_next": 1, "fail_status": 429})

    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert gateway.post("/control", json={"reset": True}).json()["fail_status"] == 503


def test_fail_after_commit_loses_the_answer_but_not_the_refund(gateway: httpx.Client) -> None:
    gateway.post("/control", json={"fail_after_commit_next": 1})

    lost = gateway.post("/v1/refunds", json=refund())
    assert lost.status_code == 503
    [recorded] = ledger_entries(gateway)

    retry = gateway.post("/v1/refunds", json=refund())

    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["provider_reference"] == recorded["provider_reference"]
    assert len(ledger_entries(gateway)) == 1


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as client:
        original = client.post("/v1/refunds", json=refund()).json()

    with running_gateway(tmp_path) as client:
        assert client.get("/ledger").json()["count"] == 1
        replay = client.post("/v1/refunds", json=refund())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == original


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
    ],
)
def test_invalid_body_is_rejected(gateway: httpx.Client, bad_field: dict[str, Any]) -> None:
    response = gateway.post("/v1/refunds", json=refund(**bad_field))

    assert response.status_code == 422
    assert ledger_entries(gateway) == []
