"""Tracing's set-up and the trace context's way through a stored event, the relay's envelope
and a consumer's reaction (shared/tracing.py); Kafka itself is replaced by the bytes the relay
hands its producer. The whole stack's trace: tests/e2e/test_tracing.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.application import ServiceApplication
from shared.consumer import Consumer
from shared.contracts import CloudEvent, IntegrationEvent, traceparent_for
from shared.health import Health
from shared.relay import Relay
from shared.settings import ServiceSettings, load_settings
from shared.stamping import STAMP_KEY

SAMPLE = Path(__file__).parents[1] / "fixtures" / "events" / "review.approved.v1.json"
TOPIC = "refunds.review.v1"


class Parcel(Aggregate):
    pass


class Reacting(ServiceApplication):
    """Stores one new aggregate in reaction to any message, as a downstream service does."""

    def react(
        self, payload: IntegrationEvent, message: CloudEvent, processing: ProcessingEvent[Any]
    ) -> None:
        processing.collect_events(Parcel())


def _env(path: Path, name: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path / f"{name}.sqlite"),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def _sample() -> IntegrationEvent:
    return CloudEvent.model_validate_json(SAMPLE.read_text()).payload()


class Producer:
    """What the relay hands Kafka, kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
def settings() -> ServiceSettings:
    return ServiceSettings(otlp_endpoint="http://127.0.0.1:9/otlp", replica="replica-7")


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@contextlib.contextmanager
def traced(
    exporter: InMemorySpanExporter, settings: ServiceSettings, http: FastAPI | None = None
) -> Iterator[None]:
    stop = tracing.setup("review", settings, http, exporter=exporter)
    try:
        yield
    finally:
        stop()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[ServiceApplication]:
    app = ServiceApplication(env=_env(tmp_path, "upstream"))
    yield app
    app.close()


@pytest.fixture
def downstream(tmp_path: Path) -> Iterator[Reacting]:
    app = Reacting(env=_env(tmp_path, "downstream"))
    yield app
    app.close()


def _http(app: ServiceApplication) -> FastAPI:
    http = FastAPI()

    @http.post("/parcels")
    def create() -> dict[str, str]:  # in a worker thread, as the services' routes
        parcel = Parcel()
        app.save(parcel)
        return {"id": str(parcel.id)}

    return http


async def _relay_once(app: ServiceApplication, settings: ServiceSettings) -> list[CloudEvent]:
    relay = Relay(
        app,
        settings,
        source="review",
        topic=TOPIC,
        to_integration=lambda _: _sample(),
        health=Health(),
    )
    await relay.follower.load()
    producer = Producer()
    await relay._publish(producer, await relay.follower.next_batch(wait=1))  # type: ignore[arg-type]
    return [CloudEvent.from_bytes(raw) for raw in producer.sent]


def _consume(app: ServiceApplication, settings: ServiceSettings, event: CloudEvent) -> None:
    consumer = Consumer(app, settings, group="test", topics=[TOPIC], health=Health())
    record = SimpleNamespace(topic=TOPIC, offset=0, value=event.to_bytes())
    consumer._apply_all([record])  # type: ignore[list-item]
    assert consumer.applied == 1


def _stamps(app: ServiceApplication) -> list[dict[str, str]]:
    stored = app.recorder.select_notifications(start=1, limit=100)
    return [json.loads(n.state)[STAMP_KEY] for n in stored]


def _one(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans if span.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


async def test_one_trace_from_the_request_through_the_envelope_into_the_reaction(
    exported: InMemorySpanExporter,
    settings: ServiceSettings,
    upstream: ServiceApplication,
    downstream: Reacting,
) -> None:
    http = _http(upstream)
    with traced(exported, settings, http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            assert (await client.post("/parcels")).status_code == 200
        [published] = await _relay_once(upstream, settings)
        _consume(downstream, settings, published)
    spans = exported.get_finished_spans()
    server = _one(spans, SpanKind.SERVER)
    publish = _one(spans, SpanKind.PRODUCER)
    process = _one(spans, SpanKind.CONSUMER)
    assert server.resource.attributes["service.name"] == "review"
    assert server.resource.attributes["refunds.replica"] == "replica-7"

    # The stored event remembers the request's span; the envelope continues its trace with
    # the span id derived from the event id, which is the relay's publish span.
    [stamp] = _stamps(upstream)
    trace_id = f"{server.context.trace_id:032x}"
    assert stamp["traceparent"] == f"00-{trace_id}-{server.context.span_id:016x}-01"
    event_span = uuid.UUID(published.id).hex[:16]
    assert published.traceparent == f"00-{trace_id}-{event_span}-01"
    assert f"{publish.context.span_id:016x}" == event_span
    assert publish.parent is not None and publish.parent.span_id == server.context.span_id
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == published.id

    # The consumer's span is the publish span's child, and the reaction stored inside it.
    assert process.context.trace_id == server.context.trace_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    [reaction] = _stamps(downstream)
    assert reaction["traceparent"] == f"00-{trace_id}-{process.context.span_id:016x}-01"


async def test_a_republished_event_carries_the_same_traceparent(
    exported: InMemorySpanExporter, settings: ServiceSettings, upstream: ServiceApplication
) -> None:
    with traced(exported, settings):
        with tracing._tracer.start_as_current_span("request"):
            upstream.save(Parcel())
        [first] = await _relay_once(upstream, settings)
        upstream.positions.save("relay:" + TOPIC, 0)  # as after the broker lost its data
        [again] = await _relay_once(upstream, settings)
    assert "traceparent" in _stamps(upstream)[0]
    assert again.id == first.id
    assert again.traceparent == first.traceparent


async def test_untraced_the_envelope_keeps_the_refund_trace_and_the_consumer_its_context(
    upstream: ServiceApplication, downstream: Reacting
) -> None:
    settings = ServiceSettings()
    assert settings.otlp_endpoint is None
    assert tracing.setup("review", settings, FastAPI()) is not None
    assert not tracing.enabled()
    upstream.save(Parcel())
    [published] = await _relay_once(upstream, settings)
    # As before tracing: one trace per refund, one span id per event.
    assert published.traceparent == traceparent_for(published.subject, published.id)
    assert "traceparent" not in _stamps(upstream)[0]

    seen: list[str] = []
    with tracing.processing(published, TOPIC):
        context = trace.get_current_span().get_span_context()
        seen.append(f"00-{context.trace_id:032x}-{context.span_id:016x}-01")
        assert tracing.current_refund() == published.subject
    assert seen == [published.traceparent]
    _consume(downstream, settings, published)
    assert "traceparent" not in _stamps(downstream)[0]


def test_untraced_nothing_is_instrumented() -> None:
    http = FastAPI()
    before = list(http.user_middleware)
    tracing.setup("intake", ServiceSettings(), http)()
    assert http.user_middleware == before
    assert not tracing.enabled()


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("https://otel.example/", "https://otel.example/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_the_traces_url_of_a_collector(endpoint: str, url: str) -> None:
    assert tracing.traces_url(endpoint) == url


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector", "http://a b"])
def test_a_bad_endpoint_stops_start_up_naming_it(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFUNDS_OTLP_ENDPOINT", endpoint)
    with pytest.raises(SystemExit):
        load_settings(ServiceSettings)
    assert "REFUNDS_OTLP_ENDPOINT" in capsys.readouterr().err


def test_the_replica_defaults_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("REFUNDS_REPLICA", raising=False)
    assert ServiceSettings().replica == socket.gethostname()
    monkeypatch.setenv("REFUNDS_REPLICA", "payout-2")
    assert ServiceSettings().replica == "payout-2"


def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    assert tracing.parse("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert tracing.parse("not a traceparent") is None
    parsed = tracing.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert parsed is not None and parsed.is_remote and parsed.trace_flags.sampled
