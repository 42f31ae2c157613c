"""Platform webhooks, the rules of endpoints: the URLs a tenant receives events at, their
secrets, when they are disabled, and the tenant's directory of what each subscribes to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast, get_args

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from shared.ids import derived_id
from shared.quick_copy import QuickCopy

ANY_TYPE = "*"
# Why an endpoint is disabled: it answered 410 Gone, it kept failing, or its tenant said so.
DisableReason = Literal["gone", "failing", "manual"]
DISABLE_REASONS: tuple[DisableReason, ...] = get_args(DisableReason)


class EndpointRefused(ValueError):
    """A command the endpoint's state does not allow; `code` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def matches(event_types: list[str], event_type: str) -> bool:
    return ANY_TYPE in event_types or event_type in event_types


def check_event_types(event_types: list[str]) -> None:
    if not event_types:
        raise EndpointRefused("empty_event_types", "subscribe to at least one event type")
    if ANY_TYPE in event_types and len(event_types) > 1:
        raise EndpointRefused("wildcard_alone", '"*" stands alone: it means every event type')


class WebhookEndpoint(QuickCopy, Aggregate):
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
        self.disabled_reason: DisableReason | None = None
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
            self._disabled(reason=cast(DisableReason, reason), at=at, actor=actor)

    @event(Disabled)
    def _disabled(self, *, reason: DisableReason, at: datetime, actor: str) -> None:
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


@dataclass
class EndpointDirectory(QuickCopy, Aggregate, created_event_name="Opened"):
    """A tenant's endpoints with what they subscribe to, so a fan-out loads one aggregate.

    Saved together with the endpoint whenever its subscription, its state or its existence
    changes, so the two never disagree.
    """

    tenant: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)

    class EntrySet(Aggregate.Event):
        endpoint_id: str
        event_types: list[str]
        enabled: bool

    class EntryRemoved(Aggregate.Event):
        endpoint_id: str

    @staticmethod
    def create_id(tenant: str) -> uuid.UUID:
        return derived_id("webhook-directory", tenant)

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


# Stored events name the class they were written from; those of earlier releases name the
# module it lived in then, and keep loading (their nested events resolve through it).
EARLIER_TOPICS = {
    "services.notify.endpoints:WebhookEndpoint": WebhookEndpoint,
    "services.notify.endpoints:EndpointDirectory": EndpointDirectory,
}
for _topic, _moved in EARLIER_TOPICS.items():
    register_topic(_topic, _moved)
