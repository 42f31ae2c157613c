"""Log lines for people (text, the default) or for a log pipeline (one JSON object a line).

A JSON line names the service and replica, and the trace, span and refund of the work in
hand, so that a log search finds the lines of one refund and jumps to its trace.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

from shared import stamping, tracing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a LogRecord always has; anything else was passed in `extra=` and is kept.
# uvicorn's `color_message` is its message again, with terminal colour codes.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, service, replica, trace_id,
    span_id, refund_id when known, the exception's traceback when there is one, and any
    `extra=` fields."""

    def __init__(self, service: str, replica: str) -> None:
        super().__init__()
        self.service = service
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "replica": self.replica,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = f"{context.trace_id:032x}"
            line["span_id"] = f"{context.span_id:016x}"
        refund = getattr(record, "refund_id", None) or _refund_in_hand()
        if refund:
            line["refund_id"] = refund
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _refund_in_hand() -> str | None:
    found = tracing.current_refund()
    if found:
        return found
    stamp = stamping.current()
    return stamp.correlation if stamp is not None else None


def configure_logging(
    level: str,
    log_format: Literal["text", "json"] = "text",
    *,
    service: str = "refunds",
    replica: str = "",
) -> None:
    """The root logger's one handler, to stderr, in `log_format`."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(service, replica))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request it makes at INFO: a line per payout and per webhook, formatted
    # and written by the service (about a twentieth of its client's cost). Failures are
    # logged where they are handled, with what they mean.
    logging.getLogger("httpx").setLevel(logging.WARNING)
