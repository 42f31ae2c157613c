"""JsonPeer (shared/http_client.py), the aiohttp client of the payout executor's gateway calls:
answers whole, failures as PeerUnreachable, and with tracing on a client span whose context
the peer receives — what opentelemetry-instrumentation-httpx gives the httpx clients."""

from __future__ import annotations

import asyncio
import socket

import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.payout.providers.base import TransientProviderError
from services.payout.providers.gateway import SandboxGateway
from shared import tracing
from shared.http_client import JsonPeer, PeerUnreachable
from shared.settings import ServiceSettings
from tests.support.sandbox_gateway import serving


def _echo() -> tuple[FastAPI, list[dict[str, str]]]:
    app = FastAPI()
    seen: list[dict[str, str]] = []

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, object]:
        seen.append(dict(request.headers))
        return {"got": await request.json(), "q": dict(request.query_params)}

    @app.get("/v1/refunds/{number}")
    async def slow(number: str) -> dict[str, str]:
        await asyncio.sleep(2)
        return {}

    return app, seen


async def test_an_answer_comes_whole_and_calls_are_counted() -> None:
    app, seen = _echo()
    calls: list[str] = []

    async def count(method: str, path: str) -> None:
        calls.append(f"{method} {path}")

    with serving(app) as url:
        peer = JsonPeer(url + "/", 5.0, on_request=count)
        try:
            answer = await peer.request(
                "POST", "/v1/echo", json={"amount": 12900}, params={"a": "1"}
            )
            missing = await peer.request("GET", "/v1/nothing")
        finally:
            await peer.close()
    assert answer.status_code == 200
    assert answer.json() == {"got": {"amount": 12900}, "q": {"a": "1"}}
    assert answer.headers["Content-Type"] == answer.headers["content-type"] == "application/json"
    assert missing.status_code == 404 and "Not Found" in missing.text
    assert calls == ["POST /v1/echo", "GET /v1/nothing"]
    assert "traceparent" not in seen[0]  # tracing off: nothing of it is sent


async def test_no_connection_or_no_answer_in_time_is_unreachable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
    peer = JsonPeer(f"http://127.0.0.1:{port}", 5.0)
    with pytest.raises(PeerUnreachable, match="ClientConnectorError"):
        await peer.request("GET", "/v1/x")
    await peer.close()
    app, _ = _echo()
    with serving(app) as url:
        gateway = SandboxGateway(url, timeout=0.3)
        try:
            with pytest.raises(PeerUnreachable):
                await gateway._peer.request("GET", "/v1/refunds/rf_1")
            # To the executor, a gateway that does not answer is a transient failure.
            with pytest.raises(TransientProviderError, match="gateway unreachable"):
                await gateway.query("rf_1")
        finally:
            await gateway.close()


async def test_with_tracing_on_each_call_is_a_client_span_the_peer_continues() -> None:
    app, seen = _echo()
    exported = InMemorySpanExporter()
    settings = ServiceSettings(otlp_endpoint="http://127.0.0.1:9/otlp", replica="payout-1")
    stop = tracing.setup("payout", settings, None, exporter=exported)
    try:
        with serving(app) as url:
            peer = JsonPeer(url, 5.0)
            try:
                with tracing.continuing("payout execute", None):
                    await peer.request("POST", "/v1/echo", json={})
            finally:
                await peer.close()
    finally:
        stop()
    spans = exported.get_finished_spans()
    [client] = [s for s in spans if s.kind == SpanKind.CLIENT]
    [parent] = [s for s in spans if s.name == "payout execute"]
    assert client.parent is not None and client.parent.span_id == parent.context.span_id
    assert client.attributes is not None
    assert client.attributes["http.request.method"] == "POST"
    assert client.attributes["url.full"] == url + "/v1/echo"
    assert client.attributes["http.response.status_code"] == 200
    trace_id, span_id = f"{client.context.trace_id:032x}", f"{client.context.span_id:016x}"
    assert seen[0]["traceparent"] == f"00-{trace_id}-{span_id}-01"
