"""Sandbox SMS provider: a real HTTP API that accepts text messages once per idempotency key,
keeps every accepted one in a JSON Lines file, and injects the faults real providers show.
The protocol and the control switches are described in sandbox/SMS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sandbox.serving import DEFAULT_DATA_DIR, DEFAULT_HOST, EXIT_BAD_CONFIG, Served
from shared.http_server import serve_http

MESSAGES_FILE = "sms-messages.jsonl"
REPLAY_HEADER = "Idempotent-Replayed"
DEFAULT_PORT = 8030
START_TIMEOUT_SECONDS = 5.0
MAX_KEY_CHARS = 255
MAX_TEXT_CHARS = 1600  # ten or more segments: no customer message is meant to be that long
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# GSM 03.38 default alphabet and extension table (extension characters take two places).
_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")

Phone = Annotated[str, Field(strict=True, max_length=32)]


def segments(text: str) -> int:
    """How many SMS the network carries ``text`` in: 160/153 GSM-7 places, else 70/67 UCS-2."""
    if set(text) <= _GSM | _GSM_EXTENDED:
        places, single, part = len(text) + sum(c in _GSM_EXTENDED for c in text), 160, 153
    else:
        places, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if places <= single else math.ceil(places / part)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, Field(strict=True)]
    text: Annotated[str, Field(strict=True)]


class ControlRequest(BaseModel):
    """Fault switches; omitted fields keep their current value (see sandbox/SMS.md)."""

    model_config = ConfigDict(extra="forbid")

    fail_next: Annotated[int, Field(strict=True, ge=0)] | None = None
    status: Annotated[int, Field(strict=True, ge=400, le=599)] | None = None
    retry_after: Annotated[int, Field(strict=True, ge=0, le=3600)] | None = None
    delay_ms: Annotated[int, Field(strict=True, ge=0, le=60_000)] | None = None
    reject: list[Phone] | None = None
    reset: Annotated[bool, Field(strict=True)] = False


@dataclass
class Switches:
    fail_next: int = 0
    status: int = 503
    retry_after: int | None = None  # None: no Retry-After header
    delay_ms: int = 0
    reject: list[str] = field(default_factory=list)


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status, headers, media_type="application/problem+json")


class Outbox:
    """Accepted messages, in order, mirrored to a JSON Lines file; the switches in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.switches = Switches()
        self.messages: list[dict[str, Any]] = []
        self.by_key: dict[str, dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for number, line in enumerate(lines, start=1):
            try:
                self._remember(json.loads(line))
            except json.JSONDecodeError:
                # Lines are flushed before the answer, so a torn last line was never answered.
                if number < len(lines):
                    raise

    def _remember(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.by_key[message["idempotency_key"]] = message

    def accept(self, key: str, to: str, text: str) -> dict[str, Any]:
        """Record a new message (call with the lock held); on disk before it is answered."""
        message = {
            "id": "sms_" + secrets.token_hex(12),
            "to": to,
            "text": text,
            "segments": segments(text),
            "status": "accepted",
            "received_at": datetime.now(UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "idempotency_key": key,
        }
        # One write, flushed (closed) before the answer: in the kernel, it survives a kill of the
        # process (the fault our drills inject); an fsync would only guard against power loss.
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(message, ensure_ascii=False) + "\n")
        self._remember(message)
        return message

    def control(self, change: ControlRequest) -> dict[str, Any]:
        with self.lock:
            if change.reset:
                self.switches = Switches()
            for name, value in change.model_dump(exclude={"reset"}, exclude_unset=True).items():
                setattr(self.switches, name, value)
            return dict(vars(self.switches), reject=list(self.switches.reject))


def create_app(data_dir: Path, *, api_key: str | None = None) -> FastAPI:
    """The SMS provider whose accepted messages live in ``data_dir``/sms-messages.jsonl."""
    outbox = Outbox(Path(data_dir) / MESSAGES_FILE)
    app = FastAPI(title="Sandbox SMS provider")
    app.state.outbox = outbox

    def unauthorised(authorization: str | None) -> JSONResponse | None:
        if api_key is None or authorization == f"Bearer {api_key}":
            return None
        return _problem(401, "Unauthorized", "a valid bearer api key is required")

    def send(body: MessageRequest, key: str | None) -> JSONResponse:
        if not key or len(key) > MAX_KEY_CHARS:
            detail = f"an Idempotency-Key header of 1 to {MAX_KEY_CHARS} characters is required"
            return _problem(400, "Bad Request", detail)
        if not _E164.match(body.to):
            return _problem(400, "Invalid number", f"{body.to!r} is not an E.164 number")
        if not body.text.strip() or len(body.text) > MAX_TEXT_CHARS:
            return _problem(400, "Invalid text", f"text must have 1 to {MAX_TEXT_CHARS} characters")
        with outbox.lock:
            switches = outbox.switches
            if switches.fail_next > 0:
                switches.fail_next -= 1
                retry = switches.retry_after
                headers = {"Retry-After": str(retry)} if retry is not None else None
                return _problem(switches.status, "Injected failure", "nothing was sent", headers)
            known = outbox.by_key.get(key)
            if known is not None:
                if (known["to"], known["text"]) != (body.to, body.text):
                    detail = "Idempotency-Key reused with a different message"
                    return _problem(409, "Conflict", detail)
                return JSONResponse(known, 200, {REPLAY_HEADER: "true"})
            if body.to in switches.reject:
                return _problem(400, "Invalid number", f"{body.to} cannot receive SMS")
            return JSONResponse(outbox.accept(key, body.to, body.text), 201)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # On the event loop, not in the thread pool: accepting is in memory plus one short append
    # (a thread hop per message cost more than the write); the delay is an asyncio sleep.
    @app.post("/v1/messages")
    async def post_message(
        body: MessageRequest,
        idempotency_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        refused = unauthorised(authorization)
        if refused is not None:
            return refused
        response = send(body, idempotency_key)
        delay = outbox.switches.delay_ms / 1000
        if delay > 0:
            await asyncio.sleep(delay)  # after the work: a slow answer to a sent message
        return response

    @app.get("/v1/messages", response_model=None)
    def list_messages(
        to: str | None = None, authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse | dict[str, Any]:
        refused = unauthorised(authorization)
        if refused is not None:
            return refused
        with outbox.lock:
            return {"data": [m for m in outbox.messages if to is None or m["to"] == to]}

    @app.get("/control")
    def get_control() -> dict[str, Any]:
        return outbox.control(ControlRequest())

    @app.post("/control")
    def set_control(change: ControlRequest) -> dict[str, Any]:
        return outbox.control(change)

    return app


class SmsSandbox(Served):
    """The provider served by uvicorn in a thread on a free 127.0.0.1 port, for tests:

    with SmsSandbox(tmp_path) as sms:
        HttpSmsProvider(sms.url).send(...)
        assert len(sms.messages()) == 1
    """

    def __init__(self, data_dir: Path, *, api_key: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.api_key = api_key
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    def start(self) -> SmsSandbox:
        # Bound here, not in uvicorn, so the port cannot be taken between choosing and serving.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((DEFAULT_HOST, 0))
        app = create_app(self.data_dir, api_key=self.api_key)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        self._server, self._thread, self._socket = server, thread, sock
        self.url = f"http://{DEFAULT_HOST}:{sock.getsockname()[1]}"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                self.stop()
                raise RuntimeError("the SMS sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None and self._socket is not None:
            self._server.should_exit = True
            self._thread.join(timeout=START_TIMEOUT_SECONDS)
            self._socket.close()
        self._server = self._thread = self._socket = None

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every accepted message (optionally to one number), as GET /v1/messages lists them."""
        response = httpx.get(
            f"{self.url}/v1/messages",
            params={"to": to} if to else None,
            headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else None,
        )
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def control(self, **switches: Any) -> dict[str, Any]:
        """POST /control, e.g. ``control(fail_next=1, status=503, retry_after=2)``."""
        response = httpx.post(f"{self.url}/control", json=switches)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {raw!r}")
    return int(raw)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m sandbox.sms [--host H] [--port P] [--data DIR] [--api-key K]`; the defaults
    come from SANDBOX_SMS_HOST, SANDBOX_SMS_PORT, SANDBOX_DATA_DIR and SANDBOX_SMS_API_KEY."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.sms", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_SMS_HOST", DEFAULT_HOST))
    parser.add_argument(
        "--port", type=str, default=os.environ.get("SANDBOX_SMS_PORT", str(DEFAULT_PORT))
    )
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SANDBOX_DATA_DIR", DEFAULT_DATA_DIR))
    )
    parser.add_argument("--api-key", default=os.environ.get("SANDBOX_SMS_API_KEY") or None)
    args = parser.parse_args(argv)
    try:
        port = _port(args.port.strip())
    except argparse.ArgumentTypeError as error:
        print(f"sandbox sms: {error}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    serve_http(create_app(args.data, api_key=args.api_key), host=args.host, port=port)


if __name__ == "__main__":
    main()
