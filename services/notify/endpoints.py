"""Platform webhooks, the rules: tenants' endpoints, their directory, and each delivery's attempts.

One `WebhookDelivery` per (endpoint, CloudEvent), addressed by a derived id, so a redelivered
Kafka message or a restarted consumer finds the delivery that exists instead of making another.
An attempt is claimed (`AttemptStarted`) before the request goes out and settled afterwards; an
attempt claimed but never settled is `uncertain` and is only ever sent again by a person.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id

ANY_TYPE = "*"
DISABLE_REASONS = ("gone", "failing", "manual")
DELIVERY_STATES = ("pending", "delivered", "failed", "uncertain")


class EndpointRefused(ValueError):
    """A command the endpoint's state does not allow; `code` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeliveryRefused(EndpointRefused):
    """A command the delivery's state does not allow."""


def matches(event_types: list[str], event_type: str) -> bool:
    return ANY_TYPE in event_types or event_type in event_types


def check_event_types(event_types: list[str]) -> None:
    if not event_types:
        raise EndpointRefused("empty_event_types", "subscribe to at least one event type")
    if ANY_TYPE in event_types and len(event_types) > 1:
        raise EndpointRefused("wildcard_alone", '"*" stands alone: it means every event type')


class WebhookEndpoint(Aggregate):
    """A URL a tenant receives signed events at; secrets overlap for a while after a rotation.

    Secrets are held as the application gives them: sealed, opened only to sign.
    """

    class Registered(Aggregate.Created):
        tenant: str
        url: str
        event_types: list[str]
        description: str
        alert_email: str | None
        secret: str
        actor: str

    class Changed(Aggregate.Event):
        url: str
        event_types: list[str]
        description: str
        alert_email: str | None
        actor: str

    class SecretRotated(Aggregate.Event):
        secret: str
        previous_expires_at: datetime
        actor: str

    class Enabled(Aggregate.Event):
        actor: str

    class Disabled(Aggregate.Event):
        reason: str
        at: datetime
        actor: str

    class FailingSince(Aggregate.Event):
        at: datetime

    class Recovered(Aggregate.Event):
        at: datetime

    class AlertSent(Aggregate.Event):
        at: datetime

    class Deleted(Aggregate.Event):
        actor: str

    @event(Registered)
    def __init__(
        self,
        *,
        tenant: str,
        url: str,
        event_types: list[str],
        description: str,
        alert_email: str | None,
        secret: str,
        actor: str,
    ) -> None:
        check_event_types(event_types)
        self.tenant = tenant
        self.url = url
        self.event_types = list(event_types)
        self.description = description
        self.alert_email = alert_email
        self.secret = secret
        self.previous_secret: str | None = None
        self.previous_expires_at: datetime | None = None
        self.disabled_reason: str | None = None
        self.disabled_at: datetime | None = None
        self.failing_since: datetime | None = None
        self.alert_sent_at: datetime | None = None
        self.deleted = False

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None and not self.deleted

    @property
    def alert_due(self) -> bool:
        """Disabled for failing, with somewhere to say so, and not yet said."""
        return (
            self.disabled_reason == "failing"
            and self.alert_email is not None
            and self.alert_sent_at is None
            and not self.deleted
        )

    def live_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a message sent at `now`: the current one, and the previous
        one until its overlap expires."""
        live = [self.secret]
        if self.previous_secret and self.previous_expires_at and now < self.previous_expires_at:
            live.append(self.previous_secret)
        return live

    def matches(self, event_type: str) -> bool:
        return matches(self.event_types, event_type)

    def _check_present(self) -> None:
        if self.deleted:
            raise EndpointRefused("deleted", "the endpoint was deleted")

    def change(
        self,
        *,
        url: str,
        event_types: list[str],
        description: str,
        alert_email: str | None,
        actor: str,
    ) -> None:
        self._check_present()
        check_event_types(event_types)
        wanted = (url, list(event_types), description, alert_email)
        if wanted != (self.url, self.event_types, self.description, self.alert_email):
            self._changed(
                url=url,
                event_types=list(event_types),
                description=description,
                alert_email=alert_email,
                actor=actor,
            )

    @event(Changed)
    def _changed(
        self,
        *,
        url: str,
        event_types: list[str],
        description: str,
        alert_email: str | None,
        actor: str,
    ) -> None:
        self.url = url
        self.event_types = event_types
        self.description = description
        self.alert_email = alert_email

    def rotate_secret(self, *, secret: str, previous_expires_at: datetime, actor: str) -> None:
        self._check_present()
        if secret == self.secret:
            raise EndpointRefused("same_secret", "the new secret must differ from the current one")
        self._secret_rotated(secret=secret, previous_expires_at=previous_expires_at, actor=actor)

    @event(SecretRotated)
    def _secret_rotated(self, *, secret: str, previous_expires_at: datetime, actor: str) -> None:
        self.previous_secret = self.secret
        self.previous_expires_at = previous_expires_at
        self.secret = secret

    def enable(self, *, actor: str) -> None:
        """Re-enable a disabled endpoint; its failure clock starts afresh."""
        self._check_present()
        if self.disabled_reason is not None:
            self._enabled(actor=actor)

    @event(Enabled)
    def _enabled(self, *, actor: str) -> None:
        self.disabled_reason = None
        self.disabled_at = None
        self.failing_since = None
        self.alert_sent_at = None

    def disable(self, *, reason: str, at: datetime, actor: str) -> None:
        self._check_present()
        if reason not in DISABLE_REASONS:
            raise EndpointRefused("unknown_reason", f"no disable reason {reason!r}")
        if self.disabled_reason is None:
            self._disabled(reason=reason, at=at, actor=actor)

    @event(Disabled)
    def _disabled(self, *, reason: str, at: datetime, actor: str) -> None:
        self.disabled_reason = reason
        self.disabled_at = at

    def record_success(self, *, at: datetime) -> None:
        if self.failing_since is not None:
            self._recovered(at=at)

    @event(Recovered)
    def _recovered(self, *, at: datetime) -> None:
        self.failing_since = None

    def record_failure(self, *, at: datetime, disable_after: timedelta) -> None:
        """A failed attempt; failing without a success for `disable_after` disables it."""
        if self.deleted or self.disabled_reason is not None:
            return
        if self.failing_since is None:
            self._failing_since(at=at)
        assert self.failing_since is not None
        if at - self.failing_since >= disable_after:
            self.disable(reason="failing", at=at, actor="system:deliverer")

    @event(FailingSince)
    def _failing_since(self, *, at: datetime) -> None:
        self.failing_since = at

    def record_gone(self, *, at: datetime) -> None:
        """The receiver answered 410 Gone: it asks us to stop, so we do at once."""
        if not self.deleted:
            self.disable(reason="gone", at=at, actor="system:deliverer")

    def record_alert_sent(self, *, at: datetime) -> None:
        if self.alert_due:
            self._alert_sent(at=at)

    @event(AlertSent)
    def _alert_sent(self, *, at: datetime) -> None:
        self.alert_sent_at = at

    def delete(self, *, actor: str) -> None:
        self._check_present()
        self._deleted(actor=actor)

    @event(Deleted)
    def _deleted(self, *, actor: str) -> None:
        self.deleted = True


class EndpointDirectory(Aggregate):
    """A tenant's endpoints with what they subscribe to, so a fan-out loads one aggregate.

    Saved together with the endpoint whenever its subscription, its state or its existence
    changes, so the two never disagree.
    """

    class Opened(Aggregate.Created):
        tenant: str

    class EntrySet(Aggregate.Event):
        endpoint_id: str
        event_types: list[str]
        enabled: bool

    class EntryRemoved(Aggregate.Event):
        endpoint_id: str

    @staticmethod
    def create_id(tenant: str) -> uuid.UUID:
        return derived_id("webhook-directory", tenant)

    @event(Opened)
    def __init__(self, *, tenant: str) -> None:
        self.tenant = tenant
        self.entries: dict[str, dict[str, Any]] = {}

    def sync(self, endpoint: WebhookEndpoint) -> None:
        """Make the entry agree with `endpoint` (no event when it already does)."""
        if endpoint.tenant != self.tenant:
            raise EndpointRefused("other_tenant", "the endpoint belongs to another tenant")
        key = str(endpoint.id)
        if endpoint.deleted:
            if key in self.entries:
                self._entry_removed(endpoint_id=key)
            return
        types, enabled = list(endpoint.event_types), endpoint.enabled
        if self.entries.get(key) != {"event_types": types, "enabled": enabled}:
            self._entry_set(endpoint_id=key, event_types=types, enabled=enabled)

    @event(EntrySet)
    def _entry_set(self, *, endpoint_id: str, event_types: list[str], enabled: bool) -> None:
        self.entries[endpoint_id] = {"event_types": event_types, "enabled": enabled}

    @event(EntryRemoved)
    def _entry_removed(self, *, endpoint_id: str) -> None:
        self.entries.pop(endpoint_id, None)

    def subscribers(self, event_type: str) -> list[uuid.UUID]:
        """The enabled endpoints that want `event_type`, in a stable order."""
        return [
            uuid.UUID(key)
            for key, entry in sorted(self.entries.items())
            if entry["enabled"] and matches(entry["event_types"], event_type)
        ]


@dataclass(frozen=True)
class AttemptResult:
    """What one request got back: a status (None when no answer came) and how long it took."""

    status_code: int | None
    latency_ms: int
    error: str | None = None
    response_excerpt: str = ""


class WebhookDelivery(Aggregate):
    """One event for one endpoint: the exact bytes to send, and every attempt to send them."""

    class Scheduled(Aggregate.Created):
        tenant: str
        endpoint_id: uuid.UUID
        event_id: str
        event_type: str
        refund_id: str
        body: str
        at: datetime

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

    @event(Scheduled)
    def __init__(
        self,
        *,
        tenant: str,
        endpoint_id: uuid.UUID,
        event_id: str,
        event_type: str,
        refund_id: str,
        body: str,
        at: datetime,
    ) -> None:
        self.tenant = tenant
        self.endpoint_id = endpoint_id
        self.event_id = event_id
        self.event_type = event_type
        self.refund_id = refund_id
        self.body = body
        self.created_at = at
        self.state = "pending"
        self.next_attempt_at: datetime | None = at
        self.attempts: list[dict[str, Any]] = []
        self.round_attempts = 0  # attempts since scheduling or the last manual redelivery
        self.reason: str | None = None

    @property
    def in_flight(self) -> bool:
        return bool(self.attempts) and self.attempts[-1]["finished_at"] is None

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

    def _settle(self, at: datetime, result: AttemptResult, outcome: str) -> None:
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
        self._attempt_failed(
            n=n,
            at=at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_excerpt=result.response_excerpt,
            next_attempt_at=None if retry_in is None else at + timedelta(seconds=retry_in),
        )

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

    def cancel(self, *, at: datetime, reason: str) -> None:
        """Stop a pending delivery (its endpoint was disabled or deleted)."""
        if self.state != "pending" or self.in_flight:
            raise DeliveryRefused("not_pending", f"delivery is {self.state}")
        self._cancelled(at=at, reason=reason)

    @event(Cancelled)
    def _cancelled(self, *, at: datetime, reason: str) -> None:
        self.state = "failed"
        self.reason = reason
        self.next_attempt_at = None

    def request_redelivery(self, *, at: datetime, actor: str) -> None:
        """Send it again now, with the same webhook-id, and a fresh round of retries."""
        if self.in_flight:
            raise DeliveryRefused("in_flight", "an attempt is in flight; wait for its outcome")
        self._redelivery_requested(at=at, actor=actor)

    @event(RedeliveryRequested)
    def _redelivery_requested(self, *, at: datetime, actor: str) -> None:
        self.state = "pending"
        self.reason = None
        self.next_attempt_at = at
        self.round_attempts = 0
