"""REFUNDS_LOG_FORMAT=json: one JSON object per line, with the service, replica, trace and
refund of the work in hand (shared/logs.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import stamping, tracing
from shared.contracts import CloudEvent
from shared.logs import JsonFormatter, configure_logging
from shared.settings import ServiceSettings

SAMPLE = Path(__file__).parents[1] / "fixtures" / "events" / "payout.succeeded.v1.json"


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("payout", "payout-2"))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def _read(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_outside_any_work_names_the_service_and_replica(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    logger.info("started on %s", "127.0.0.1:8003")
    [line] = _read(out)
    assert line["message"] == "started on 127.0.0.1:8003"
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.logs"
    assert (line["service"], line["replica"]) == ("payout", "payout-2")
    assert line["time"].endswith("+00:00")
    assert not {"trace_id", "span_id", "refund_id"} & set(line)


def test_a_line_while_handling_an_event_names_its_trace_and_refund(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    event = CloudEvent.model_validate_json(SAMPLE.read_text())
    with tracing.processing(event, "refunds.payout.v1"):
        logger.warning("provider slow", extra={"provider": "alipay"})
    [line] = _read(out)
    _, trace_id, span_id, _ = event.traceparent.split("-")
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    assert line["refund_id"] == event.subject
    assert line["provider"] == "alipay"


def test_a_request_names_the_refund_its_stamp_correlates(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    with stamping.acting("tenant:acme", correlation="rf_123"):
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("could not store")
    [line] = _read(out)
    assert line["refund_id"] == "rf_123"
    assert "ValueError: boom" in line["exception"]


def test_text_stays_the_default() -> None:
    assert ServiceSettings().log_format == "text"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json", service="notify", replica="n1")
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        configure_logging("INFO")
        [handler] = root.handlers
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_outbound_requests_are_not_logged_one_line_each_but_their_failures_are() -> None:
    root, httpx_log = logging.getLogger(), logging.getLogger("httpx")
    saved = root.handlers[:], root.level, httpx_log.level
    try:
        configure_logging("INFO", "json", service="payout", replica="p1")
        assert not httpx_log.isEnabledFor(logging.INFO)  # "HTTP Request: POST …" per payout
        assert httpx_log.isEnabledFor(logging.WARNING)
        assert logging.getLogger("services.payout").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        httpx_log.setLevel(saved[2])
