"""OpenTelemetry tracing, set up once per process, and the spans of the Kafka hops.

With `REFUNDS_OTLP_ENDPOINT` set, `setup` installs the SDK's tracer provider (service name,
replica), exports spans over OTLP/HTTP in batches, gives every HTTP request a server span
(opentelemetry-instrumentation-fastapi) and every outgoing httpx call a client span and a
`traceparent` header (opentelemetry-instrumentation-httpx). Unset, nothing of the SDK is
loaded: the API's no-op tracer answers, and the Kafka spans below return at once.

The Kafka hops carry the trace in the CloudEvent's own `traceparent` (the published
contract), not in Kafka headers, which is why aiokafka's instrumentation is not used: it
would add a second carrier, and its consumer span ends when `getmany` returns, before the
event is handled. Here:

- an event stored while a span records carries that span's traceparent in its audit stamp
  (`shared.stamping`), so the stored event remembers what caused it;
- the relay's `publishing` span continues that context and has the span id the envelope
  announces, derived from the event id (`traceparent_for`): a re-published event carries
  the same traceparent and names the same span;
- a consumer's `processing` span is a child of the envelope's context, and the reaction —
  the new events stored — happens inside it, so they record it in their turn.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.contracts.envelope import TRACEPARENT, CloudEvent

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export import SpanExporter

    from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

TRACER = "refunds"
# Probes and scrapes are not the workflow's requests: spans of them would drown the rest.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"

# The no-op tracer until `setup`: spans made with it cost next to nothing and record nothing.
_tracer = trace.get_tracer(TRACER, tracer_provider=trace.NoOpTracerProvider())
_enabled = False
# (trace id, span id) the next span must have: the relay's publish span is the one the
# envelope's traceparent names, whatever the SDK's random ids would have been.
_preset: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "preset_span_ids", default=None
)
# The refund the work in hand concerns, for log lines (shared.logs).
_refund: contextvars.ContextVar[str | None] = contextvars.ContextVar("refund", default=None)


def enabled() -> bool:
    return _enabled


def current_refund() -> str | None:
    return _refund.get()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def setup(
    service: str,
    settings: ServiceSettings,
    http: FastAPI | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> Callable[[], None]:
    """Trace this process when `settings.otlp_endpoint` is set; answers the shutdown, which
    exports the spans still buffered (call it when the process stops).

    `exporter` replaces the OTLP exporter (tests: an in-memory one, each span exported as it
    ends)."""
    global _enabled, _tracer
    if not settings.otlp_endpoint:
        return lambda: None
    # Imported only when tracing is on: an untraced process never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "refunds",
            "service.instance.id": settings.replica,
            "refunds.replica": settings.replica,
        }
    )
    provider = TracerProvider(resource=resource, id_generator=_ids())
    if exporter is None:
        url = traces_url(settings.otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider is for third-party code; ours is passed explicitly, so that a
    # process may set tracing up again after a shutdown. A given exporter (tests, benchmarks)
    # leaves the global alone: it cannot be reset, and would outlive the test.
    if exporter is None and not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer(TRACER)
    if http is not None:
        FastAPIInstrumentor.instrument_app(
            http,
            tracer_provider=provider,
            excluded_urls=EXCLUDED_URLS,
            # One span per request, not one more per ASGI message sent or received.
            exclude_spans=["receive", "send"],
        )
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _enabled = True
    log.info(
        "tracing %s (replica %s) to %s",
        service,
        settings.replica,
        traces_url(settings.otlp_endpoint),
    )

    def shutdown() -> None:
        global _enabled, _tracer
        _enabled = False
        _tracer = trace.get_tracer(TRACER, tracer_provider=trace.NoOpTracerProvider())
        HTTPXClientInstrumentor().uninstrument()
        provider.shutdown()

    return shutdown


def _ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetIds(RandomIdGenerator):
        """Random ids, except for a span started under `_preset`."""

        def generate_span_id(self) -> int:
            preset = _preset.get()
            return preset[1] if preset else super().generate_span_id()

        def generate_trace_id(self) -> int:
            preset = _preset.get()
            return preset[0] if preset else super().generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # a trace derived from a refund id is not random

    return PresetIds()


def current_traceparent() -> str | None:
    """The traceparent of the span recording now, None when none is (tracing off)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    found = span.get_span_context()
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


def parse(traceparent: str | None) -> SpanContext | None:
    """A remote span context from a W3C traceparent; None when absent or malformed."""
    found = TRACEPARENT.match(traceparent) if traceparent else None
    if found is None:
        return None
    trace_id, span_id = int(found.group(1), 16), int(found.group(2), 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(found.group(3), 16))
    )


def _parent(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is `traceparent`; empty (a new trace) without one — never the
    context current by chance in a loop."""
    remote = parse(traceparent)
    if remote is None:
        return otel_context.Context()
    return trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context())


def _attributes(event: CloudEvent, topic: str, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.message.id": event.id,
        "cloudevents.event_id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_source": event.source,
        "refunds.refund_id": event.subject,
        "refunds.tenant": event.tenant,
    }


@contextlib.contextmanager
def publishing(event: CloudEvent, topic: str, recorded: str | None) -> Iterator[None]:
    """The relay's span for publishing `event`: a child of the context it was stored under
    (`recorded`), with the span id its envelope's traceparent names."""
    if not _enabled:
        yield
        return
    announced = parse(event.traceparent)
    preset = (announced.trace_id, announced.span_id) if announced else None
    token = _preset.set(preset)
    try:
        span = _tracer.start_span(
            f"send {topic}",
            context=_parent(recorded),
            kind=SpanKind.PRODUCER,
            attributes=_attributes(event, topic, "send"),
        )
    finally:
        _preset.reset(token)
    refund = _refund.set(event.subject)
    try:
        with trace.use_span(span, end_on_exit=True):
            yield
    finally:
        _refund.reset(refund)


_PROPAGATOR = TraceContextTextMapPropagator()


@contextlib.contextmanager
def calling(method: str, url: str, headers: dict[str, str]) -> Iterator[trace.Span]:
    """A client span for an HTTP call made with aiohttp (httpx calls get theirs from
    opentelemetry-instrumentation-httpx, which has no aiohttp counterpart at our release):
    a child of the current span, whose traceparent is added to `headers`, as that
    instrumentation does."""
    if not _enabled:
        yield trace.INVALID_SPAN
        return
    with _tracer.start_as_current_span(
        method,
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.full": url},
    ) as span:
        _PROPAGATOR.inject(headers)
        yield span


@contextlib.contextmanager
def processing(event: CloudEvent, topic: str) -> Iterator[trace.Span]:
    """A consumer's span for handling `event`, a child of the publisher's span; the events the
    handling stores record it as their cause. Tracing off, the envelope's context is still
    made current (for the log lines' trace ids), at the cost of one parse."""
    refund = _refund.set(event.subject)
    try:
        with _tracer.start_as_current_span(
            f"process {topic}",
            context=_parent(event.traceparent),
            kind=SpanKind.CONSUMER,
            attributes=_attributes(event, topic, "process"),
        ) as span:
            yield span
    finally:
        _refund.reset(refund)


@contextlib.contextmanager
def continuing(
    name: str, recorded: str | None, refund_id: str | None = None, **attributes: str
) -> Iterator[None]:
    """A span for work a loop does on a stored event (e.g. payout's executor sending a
    payout), a child of the context the event was stored under."""
    refund = _refund.set(refund_id)
    try:
        if not _enabled:
            yield
            return
        if refund_id is not None:
            attributes["refunds.refund_id"] = refund_id
        with _tracer.start_as_current_span(name, context=_parent(recorded), attributes=attributes):
            yield
    finally:
        _refund.reset(refund)
