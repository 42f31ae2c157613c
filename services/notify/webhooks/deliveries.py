"""Platform webhooks, the rules of a delivery: one event for one endpoint, and its attempts.

One `WebhookDelivery` per (endpoint, CloudEvent), addressed by a derived id, so a redelivered
Kafka message or a restarted consumer finds the delivery that exists instead of making another.
An attempt is claimed (`AttemptStarted`) before the request goes out and settled afterwards; an
attempt claimed but never settled is `uncertain` and is only ever sent again by a person.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from services.notify.webhooks.endpoints import EndpointRefused
from shared.ids import derived_id
from shared.quick_copy import QuickCopy

# uncertain: sent, but whether it arrived is unknown; never resent by itself.
DeliveryState = Literal["pending", "delivered", "failed", "uncertain"]
AttemptOutcome = Literal["in_flight", "succeeded", "failed", "uncertain"]


class DeliveryRefused(EndpointRefused):
    """A command the delivery's state does not allow."""


@dataclass(frozen=True)
class AttemptResult:
    """What one request got back: a status (None when no answer came) and how long it took."""

    status_code: int | None
    latency_ms: int
    error: str | None = None
    response_excerpt: str = ""


@dataclass
class WebhookDelivery(QuickCopy, Aggregate, created_event_name="Scheduled"):
    """One event for one endpoint: the exact bytes to send, and every attempt to send them."""

    tenant: str
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    refund_id: str
    body: str
    at: datetime  # when it was scheduled
    state: DeliveryState = field(default="pending", init=False)
    next_attempt_at: datetime | None = field(init=False)
    attempts: list[dict[str, Any]] = field(default_factory=list, init=False)
    round_attempts: int = field(default=0, init=False)  # since scheduled or last redelivered
    reason: str | None = field(default=None, init=False)

    class AttemptStarted(Aggregate.Event):
        n: int
        at: datetime

    class AttemptSucceeded(Aggregate.Event):
        n: int
        at: datetime
        status_code: int
        latency_ms: int
        response_excerpt: str

    class AttemptFailed(Aggregate.Event):
        n: int
        at: datetime
        status_code: int | None
        latency_ms: int
        error: str | None
        response_excerpt: str
        next_attempt_at: datetime | None  # None: given up

    class MarkedUncertain(Aggregate.Event):
        n: int
        at: datetime

    class Cancelled(Aggregate.Event):
        at: datetime
        reason: str

    class RedeliveryRequested(Aggregate.Event):
        at: datetime
        actor: str

    @staticmethod
    def create_id(endpoint_id: uuid.UUID, event_id: str) -> uuid.UUID:
        # Whatever redelivers the event, the same (endpoint, event) names the same delivery.
        return derived_id("webhook-delivery", str(endpoint_id), event_id)

    def __post_init__(self) -> None:
        self.next_attempt_at = self.at  # due at once

    @property
    def created_at(self) -> datetime:
        return self.at

    @property
    def in_flight(self) -> bool:
        return bool(self.attempts) and self.attempts[-1]["finished_at"] is None

    def settled(self, n: int) -> bool:
        """Whether attempt `n` has its outcome recorded."""
        return any(a["n"] == n and a["finished_at"] is not None for a in self.attempts)

    def is_due(self, now: datetime) -> bool:
        return (
            self.state == "pending"
            and not self.in_flight
            and self.next_attempt_at is not None
            and self.next_attempt_at <= now
        )

    def start_attempt(self, *, at: datetime) -> int:
        """Claim the next attempt before sending it; returns its number (1-based)."""
        if not self.is_due(at):
            raise DeliveryRefused("not_due", f"delivery is {self.state}, not due for an attempt")
        n = len(self.attempts) + 1
        self._attempt_started(n=n, at=at)
        return n

    @event(AttemptStarted)
    def _attempt_started(self, *, n: int, at: datetime) -> None:
        self.attempts.append(
            {
                "n": n,
                "started_at": at,
                "finished_at": None,
                "status_code": None,
                "latency_ms": None,
                "error": None,
                "response_excerpt": "",
                "outcome": "in_flight",
            }
        )
        self.round_attempts += 1
        self.next_attempt_at = None

    def _check_in_flight(self, n: int) -> None:
        if not self.in_flight or self.attempts[-1]["n"] != n:
            raise DeliveryRefused("not_in_flight", f"attempt {n} is not the one in flight")

    def _settle(self, at: datetime, result: AttemptResult, outcome: AttemptOutcome) -> None:
        self.attempts[-1].update(
            finished_at=at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_excerpt=result.response_excerpt,
            outcome=outcome,
        )

    def succeed(self, *, n: int, at: datetime, result: AttemptResult) -> None:
        self._check_in_flight(n)
        if result.status_code is None or not 200 <= result.status_code < 300:
            raise DeliveryRefused("not_success", "only a 2xx answer delivers")
        self._attempt_succeeded(
            n=n,
            at=at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.response_excerpt,
        )

    @event(AttemptSucceeded)
    def _attempt_succeeded(
        self, *, n: int, at: datetime, status_code: int, latency_ms: int, response_excerpt: str
    ) -> None:
        self._settle(
            at, AttemptResult(status_code, latency_ms, None, response_excerpt), "succeeded"
        )
        self.state = "delivered"
        self.next_attempt_at = None

    def fail(self, *, n: int, at: datetime, result: AttemptResult, retry_in: float | None) -> None:
        """A failed attempt; `retry_in` seconds until the next, None to give up."""
        self._check_in_flight(n)
        next_attempt_at = None if retry_in is None else at + timedelta(seconds=retry_in)
        self._attempt_failed(n=n, at=at, **asdict(result), next_attempt_at=next_attempt_at)

    @event(AttemptFailed)
    def _attempt_failed(
        self,
        *,
        n: int,
        at: datetime,
        status_code: int | None,
        latency_ms: int,
        error: str | None,
        response_excerpt: str,
        next_attempt_at: datetime | None,
    ) -> None:
        self._settle(at, AttemptResult(status_code, latency_ms, error, response_excerpt), "failed")
        self.next_attempt_at = next_attempt_at
        self.state = "pending" if next_attempt_at is not None else "failed"

    def mark_uncertain(self, *, at: datetime) -> None:
        """The attempt in flight will never be settled (its sender died): we cannot know
        whether the receiver got it, so it is not sent again unless someone asks."""
        if not self.in_flight:
            raise DeliveryRefused("not_in_flight", "no attempt is in flight")
        self._marked_uncertain(n=self.attempts[-1]["n"], at=at)

    @event(MarkedUncertain)
    def _marked_uncertain(self, *, n: int, at: datetime) -> None:
        self.attempts[-1].update(finished_at=at, error="outcome unknown", outcome="uncertain")
        self.state = "uncertain"
        self.next_attempt_at = None

    # The two below check the delivery's state inside the event method: one that raises
    # records nothing, and the check always holds when stored events are replayed.

    @event(Cancelled)
    def cancel(self, *, at: datetime, reason: str) -> None:
        """Stop a pending delivery (its endpoint was disabled or deleted)."""
        if self.state != "pending" or self.in_flight:
            raise DeliveryRefused("not_pending", f"delivery is {self.state}")
        self.state = "failed"
        self.reason = reason
        self.next_attempt_at = None

    @event(RedeliveryRequested)
    def request_redelivery(self, *, at: datetime, actor: str) -> None:
        """Send it again now, with the same webhook-id, and a fresh round of retries."""
        if self.in_flight:
            raise DeliveryRefused("in_flight", "an attempt is in flight; wait for its outcome")
        self.state = "pending"
        self.reason = None
        self.next_attempt_at = at
        self.round_attempts = 0


# Stored events name the class they were written from; those of earlier releases name the
# module it lived in then, and keep loading (their nested events resolve through it).
EARLIER_TOPICS = {"services.notify.endpoints:WebhookDelivery": WebhookDelivery}
for _topic, _moved in EARLIER_TOPICS.items():
    register_topic(_topic, _moved)
