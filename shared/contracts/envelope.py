"""The CloudEvents 1.0 envelope every integration event travels in on Kafka."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.catalog import EVENT_TYPES
from shared.contracts.common import IntegrationEvent
from shared.ids import uuid5

CONTENT_TYPE = "application/cloudevents+json"
EVENT_ID_NAMESPACE = uuid.UUID("6f1b8a52-3c1e-4a7e-9d0f-2b7c1e5a9d11")


class CloudEvent(BaseModel):
    """CloudEvents 1.0 structured-mode envelope with this system's extensions."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="globally unique; stable when the same event is re-published")
    source: str = Field(description="the publishing service, e.g. 'intake'")
    type: str
    subject: str = Field(description="the refund id")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    tenant: str
    position: int = Field(ge=1, description="position in the source service's ledger")
    traceparent: str
    causationid: str | None = None
    correlationid: str

    def payload(self) -> IntegrationEvent:
        """The typed integration event; KeyError for a type this build does not know."""
        return EVENT_TYPES[self.type].model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)


def stable_event_id(source: str, originator_id: uuid.UUID, version: int) -> str:
    """Derived from the stored event, so a re-published event keeps its id."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{source}/{originator_id}/{version}"))


TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def traceparent_for(refund_id: str, event_id: str, recorded: str | None = None) -> str:
    """W3C trace context of the published event: one span per event, its id derived from
    the event id, so a re-published event carries the same traceparent.

    `recorded` is the trace context the event was stored under (its audit stamp): the event
    then continues that trace (the request or message that caused it). Without one — tracing
    off, an event stored before tracing existed, by a loop outside any span — the trace is
    derived from the refund id, so the refund's events still share one trace."""
    found = TRACEPARENT.match(recorded) if recorded else None
    if found and found.group(1) != "0" * 32:
        trace, flags = found.group(1), found.group(3)
    else:
        trace, flags = uuid5(EVENT_ID_NAMESPACE, refund_id).hex, "01"
    span = uuid.UUID(event_id).hex[:16]
    return f"00-{trace}-{span}-{flags}"


def envelope(
    event: IntegrationEvent,
    *,
    source: str,
    event_id: str,
    position: int,
    time: datetime,
    causation_id: str | None,
    recorded_trace: str | None = None,
) -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source=source,
        type=event.TYPE,
        subject=event.refund_id,
        time=time,
        data=event.model_dump(mode="json"),
        tenant=event.tenant,
        position=position,
        traceparent=traceparent_for(event.refund_id, event_id, recorded_trace),
        causationid=causation_id,
        correlationid=event.refund_id,
    )
