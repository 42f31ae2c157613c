"""Micro-benchmark: what tracing costs per HTTP request and per Kafka hop, off and on.

    .venv/bin/python -m bench.tracing_overhead [--requests N] [--events N]

In one process, without network: an app with the services' shared HTTP plumbing answers
`--requests` requests through httpx's ASGI transport, and `--events` envelopes go through
the relay's publish span and a consumer's processing span. "Off" is the default (no
REFUNDS_OTLP_ENDPOINT); "on" is `shared.tracing.setup` with an exporter that drops the spans,
so the figure is the cost of making them, not of a collector's network.

A benchmark, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from shared import tracing
from shared.contracts import CloudEvent
from shared.http import install_problem_handlers
from shared.settings import ServiceSettings

SAMPLE = Path(__file__).parents[1] / "tests" / "fixtures" / "events" / "review.approved.v1.json"
TOPIC = "refunds.review.v1"


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _app() -> FastAPI:
    http = FastAPI()
    install_problem_handlers(http)

    @http.get("/v1/refunds/{refund_id}")
    def read(refund_id: str) -> dict[str, str]:
        return {"id": refund_id, "status": "approved"}

    return http


async def _requests(http: FastAPI, count: int) -> float:
    """Microseconds per request, the median of 5 rounds."""
    transport = httpx.ASGITransport(app=http)
    rounds = []
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        for _ in range(50):  # warm-up
            await client.get("/v1/refunds/rf_1")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(count // 5):
                await client.get("/v1/refunds/rf_1")
            rounds.append((time.perf_counter() - started) / (count // 5) * 1e6)
    return statistics.median(rounds)


def _hops(count: int) -> float:
    """Microseconds per event for the publish span and the processing span together."""
    event = CloudEvent.model_validate_json(SAMPLE.read_text())
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count // 5):
            with tracing.publishing(event, TOPIC, event.traceparent):
                pass
            with tracing.processing(event, TOPIC):
                pass
        rounds.append((time.perf_counter() - started) / (count // 5) * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50000)
    args = parser.parse_args()

    off_http = asyncio.run(_requests(_app(), args.requests))
    off_hop = _hops(args.events)

    traced = _app()
    settings = ServiceSettings(otlp_endpoint="http://127.0.0.1:4318", replica="bench")
    stop = tracing.setup("intake", settings, traced, exporter=Dropping())
    try:
        on_http = asyncio.run(_requests(traced, args.requests))
        on_hop = _hops(args.events)
    finally:
        stop()

    print(f"{'':24}{'off':>10}{'on':>10}{'added':>10}")
    print(f"{'HTTP request (µs)':24}{off_http:10.1f}{on_http:10.1f}{on_http - off_http:10.1f}")
    print(f"{'Kafka hop spans (µs)':24}{off_hop:10.2f}{on_hop:10.2f}{on_hop - off_hop:10.2f}")


if __name__ == "__main__":
    main()
