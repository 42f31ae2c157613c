"""One refund is one trace across intake → review → payout → notify, exported over OTLP/HTTP
to a real receiver: every Kafka hop's consumer span is the child of the publisher's span,
and each service's reaction publishes as the child of the span that handled its cause."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from refunds.devstack import Stack
from tests.e2e.support import Platform
from tests.support.factories import refund_body
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ports import stack_ports

pytestmark = [pytest.mark.e2e]

SERVICES = {"intake", "review", "payout", "notify"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def stack(
    tmp_path: Path, postgres_url: str, schema_prefix: str, receiver: OtlpReceiver
) -> Iterator[Stack]:
    env = {
        "REFUNDS_DATABASE_POOL_SIZE": "2",
        "REFUNDS_DATABASE_MAX_OVERFLOW": "2",
        "REFUNDS_OTLP_ENDPOINT": receiver.endpoint,
        "REFUNDS_LOG_FORMAT": "json",
        # The SDK's batch exporter sends every 5 s by default: sooner, so the test is short.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with Stack(
        tmp_path,
        stack_ports(),
        database_url=postgres_url,
        schema_prefix=schema_prefix,
        extra_env=env,
    ) as s:
        yield s


def _trace_of(receiver: OtlpReceiver, trace_id: str, timeout: float) -> list[ReceivedSpan]:
    """The trace's spans once every service exported some, every span a consumer names as
    parent has arrived too, and so has payout's executor's."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        ids = {s.span_id for s in spans}
        consumers = [s for s in spans if s.kind == "consumer"]
        hops = {(s.service, s.attributes.get("messaging.destination.name")) for s in consumers}
        if (
            {s.service for s in spans} >= SERVICES
            and all(s.parent_span_id in ids for s in consumers)
            and ("payout", "refunds.review.v1") in hops
            and ("notify", "refunds.review.v1") in hops
            # The executor's span is exported in a later batch than payout's consumer span.
            and any(s.service == "payout" and s.name == "payout execute" for s in spans)
        ):
            return spans
        if time.monotonic() > deadline:
            seen = sorted({(s.service, s.kind, s.name) for s in spans})
            raise AssertionError(
                f"trace {trace_id} incomplete after {timeout}s: {seen}; "
                f"rejected exports: {receiver.rejected}"
            )
        time.sleep(0.2)


def test_one_refund_is_one_trace_across_the_four_services(
    stack: Stack, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    platform = Platform(stack.url("intake"), stack.url("gateway"), tmp_path)
    # The platform's own trace: the refund's work continues it.
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    body = refund_body(1500)
    body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    response = platform.intake.post(
        "/v1/refunds",
        json=body,
        headers={
            "Idempotency-Key": uuid.uuid4().hex,
            "traceparent": f"00-{trace_id}-{caller_span}-01",
        },
    )
    assert response.status_code == 201, response.text
    refund_id = response.json()["id"]
    platform.wait_final([refund_id], timeout=60)

    spans = _trace_of(receiver, trace_id, timeout=30)
    by_id = {s.span_id: s for s in spans}

    [request] = [s for s in spans if s.kind == "server" and s.service == "intake"]
    assert request.parent_span_id == caller_span
    assert request.name == "POST /v1/refunds"

    # Every consumer span hangs under a publish span of another service, on the same topic,
    # whose span id is the one the envelope announced (derived from the event id).
    consumers = [s for s in spans if s.kind == "consumer"]
    for consumer in consumers:
        producer = by_id[consumer.parent_span_id]
        assert producer.kind == "producer", (consumer, producer)
        assert producer.service != consumer.service
        topic = consumer.attributes["messaging.destination.name"]
        assert producer.attributes["messaging.destination.name"] == topic
        event_id = producer.attributes["messaging.message.id"]
        assert producer.span_id == uuid.UUID(event_id).hex[:16]
        assert consumer.attributes["refunds.refund_id"] == refund_id

    # Each publish span hangs under the span its event was stored in, in its own service:
    # intake's request, or the consumer span whose reaction stored it.
    publishes = [s for s in spans if s.kind == "producer"]
    assert {s.service for s in publishes} >= {"intake", "review"}
    for producer in publishes:
        cause = by_id[producer.parent_span_id]
        assert cause.service == producer.service, (producer, cause)
        assert cause.kind in {"server", "consumer", "internal"}
    assert any(by_id[s.parent_span_id] is request for s in publishes)
    assert any(
        by_id[s.parent_span_id].kind == "consumer"
        and by_id[s.parent_span_id].attributes["messaging.destination.name"] == "refunds.intake.v1"
        for s in publishes
        if s.service == "review"
    )

    # payout's reaction to the approval stored the payout; its executor continued the trace
    # and called the gateway with it.
    [executes] = [s for s in spans if s.service == "payout" and s.name == "payout execute"]
    assert by_id[executes.parent_span_id].service == "payout"
    assert any(s.kind == "client" and s.parent_span_id == executes.span_id for s in spans)

    # The local stack names each process (one host runs them all): the replica is on every span.
    assert {(s.service, s.replica) for s in spans} == {(name, name) for name in SERVICES}, {
        (s.service, s.replica, s.name) for s in spans
    }

    # REFUNDS_LOG_FORMAT=json: every line a service wrote is one JSON object naming it.
    for service in SERVICES:
        lines = [
            line
            for line in stack.log_path(service).read_text().splitlines()
            if line and not line.startswith("--- ")
        ]
        assert lines, service
        for line in lines:
            parsed = json.loads(line)
            assert (parsed["service"], parsed["replica"]) == (service, service)
            assert {"time", "level", "logger", "message"} <= set(parsed)
