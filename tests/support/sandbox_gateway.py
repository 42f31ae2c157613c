"""The sandbox payment gateway served for real by uvicorn, for the integration tests
(test_sandbox_gateway*.py, test_payout_gateway*.py and the other tests that need a live
server): `serving` an app on a free port, a running gateway and a merchant's callback
`Receiver` (a second app, so signatures are checked on the bytes that crossed a socket), the
`gateway` and `receiver` fixtures, and helpers reading the gateway's ledger, switches,
callbacks and settlement reports.

A test module imports the fixtures it uses by name:
`from tests.support.sandbox_gateway import gateway_fixture, receiver_fixture`."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.gateway import create_app
from services.payout.providers.gateway import SETTLEMENT_COLUMNS

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


@pytest.fixture(name="gateway")
def gateway_fixture(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_gateway(tmp_path) as client:
        yield client


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
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
