"""One refund's story across the four services, in causal order.

Each service's ledger entries about a refund become moments. A moment caused
by another (its causation id is the other's CloudEvent id) comes after it, and
each service's own moments keep their log order; otherwise earlier first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts import SERVICES

# Facts worth a line in the story; free texts stay out (they may be personal data).
SUMMARY_KEYS = (
    "amount",
    "coupon",
    "reason",
    "channel",
    "rule",
    "policy_version",
    "decided_by",
    "approvers",
    "liability",
    "person",
    "roles",
    "tier",
    "missing",
    "reason_code",
    "deadline",
    "payout_id",
    "method",
    "route",
    "number",
    "provider_reference",
    "merchant_refund_no",
    "expected_arrival",
    "cause",
    "attempts",
    "step",
    "template",
    "recipient_masked",
    "endpoint_id",
    "event_type",
    "status_code",
    "n",
)
SEALED_PREFIX = "pii:"


@dataclass(frozen=True)
class Moment:
    service: str
    position: int
    time: str
    type: str
    actor: str
    causation_id: str | None
    event_id: str
    summary: dict[str, Any] = field(default_factory=dict)


def moment(service: str, entry: dict[str, Any]) -> Moment:
    """A moment from one audit-log entry (as `GET /v1/audit/…` answers it)."""
    return Moment(
        service=service,
        position=int(entry["position"]),
        time=str(entry["time"]),
        type=str(entry["type"]),
        actor=str(entry["actor"]),
        causation_id=entry.get("causation_id"),
        event_id=str(entry["event_id"]),
        summary=summarize(entry.get("data") or {}),
    )


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(data[key]) for key in SUMMARY_KEYS if data.get(key) not in (None, "", [])}


def _plain(value: Any) -> Any:
    """Stored JSON made readable: money and times unwrapped, personal data never shown."""
    if isinstance(value, dict):
        if "_type_" in value and "_data_" in value:
            return _plain(value["_data_"])
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str) and value.startswith(SEALED_PREFIX):
        return "[personal data]"
    return value


def ordered(moments: Iterable[Moment]) -> list[Moment]:
    """Causes before effects, each service in its own log order, else by time."""
    items = list(moments)
    by_event = {m.event_id: index for index, m in enumerate(items)}
    after: dict[int, list[int]] = {index: [] for index in range(len(items))}
    waiting = [0] * len(items)

    def edge(first: int, then: int) -> None:
        after[first].append(then)
        waiting[then] += 1

    last_of_service: dict[str, int] = {}
    for index in sorted(range(len(items)), key=lambda i: (items[i].service, items[i].position)):
        previous = last_of_service.get(items[index].service)
        if previous is not None:
            edge(previous, index)
        last_of_service[items[index].service] = index
    for index, item in enumerate(items):
        cause = by_event.get(item.causation_id or "")
        if cause is not None and cause != index:
            edge(cause, index)

    def rank(index: int) -> tuple[str, int, int]:
        m = items[index]
        service = SERVICES.index(m.service) if m.service in SERVICES else 99
        return (m.time, service, m.position)

    ready = [(rank(i), i) for i in range(len(items)) if waiting[i] == 0]
    heapq.heapify(ready)
    story: list[Moment] = []
    while ready:
        _, index = heapq.heappop(ready)
        story.append(items[index])
        for then in after[index]:
            waiting[then] -= 1
            if waiting[then] == 0:
                heapq.heappush(ready, (rank(then), then))
    if len(story) < len(items):  # a cycle cannot come from real data; keep every moment anyway
        seen = {id(m) for m in story}
        story += sorted((m for m in items if id(m) not in seen), key=lambda m: m.time)
    return story
