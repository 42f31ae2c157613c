"""Platform webhooks, the application side: fan-out of consumed events, endpoint commands,
the deliverer's claims and outcomes, and queries.

Mixed into NotifyApplication. The fan-out runs inside `react`, so its deliveries are stored in
the same transaction as the consumer's tracking record: a Kafka message seen twice creates no
second delivery, and a delivery's id derives from (endpoint, CloudEvent id), so neither does the
same event re-published under a new position.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from services.notify.endpoints import (
    AttemptResult,
    EndpointDirectory,
    EndpointRefused,
    WebhookDelivery,
    WebhookEndpoint,
    check_event_types,
)
from services.notify.operational import (
    SUBSCRIBABLE,
    WebhookEndpointDisabledV1,
    WebhookTestV1,
    cloud_event,
    disabled_event_id,
)
from services.notify.safety import Resolver, UnsafeUrl, check_url
from services.notify.webhooks import is_gone, new_secret
from shared.contracts import EVENT_TYPES, CloudEvent
from shared.idempotency import KeyedRequest, Outcome
from shared.ids import parse_public_id, public_id
from shared.keystore import Keystore, Subject

if TYPE_CHECKING:
    from shared.application import ServiceApplication

    _Base = ServiceApplication
else:
    _Base = object

ENDPOINT_PREFIX = "we"
DELIVERY_PREFIX = "wd"
EDITABLE = ("url", "event_types", "description", "alert_email", "enabled")
T = TypeVar("T")
# Signing secrets are stored sealed (AES-256-GCM) under a key of the endpoint's own in the
# shared keystore: no stored event, audit entry or backup holds one in clear, and deleting
# the endpoint shreds them. Tenant names never hold ":", so no customer's subject collides.
SECRET_FIELD = "webhook.secret"  # noqa: S105 (the sealed field's name, not a secret)


def secret_subject(tenant: str, endpoint_id: uuid.UUID) -> Subject:
    return (f"webhooks:{tenant}", str(endpoint_id))


class EndpointNotFound(LookupError):
    """No such endpoint for this tenant (another tenant's is not found either)."""


class DeliveryNotFound(LookupError):
    """No such delivery of this endpoint."""


class InvalidEndpoint(ValueError):
    """Fields a request got wrong, each as {field, code, message}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} field(s) failed validation")
        self.errors = errors


def endpoint_public_id(endpoint_id: uuid.UUID) -> str:
    return public_id(ENDPOINT_PREFIX, endpoint_id)


def delivery_public_id(delivery_id: uuid.UUID) -> str:
    """Also the `webhook-id` header: the same for every attempt of the delivery."""
    return public_id(DELIVERY_PREFIX, delivery_id)


@dataclass(frozen=True)
class Claim:
    """An attempt the deliverer has claimed: everything it needs to send it."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    n: int
    round_attempts: int  # attempts made in this round, this one included
    msg_id: str
    url: str
    secrets: list[str]
    body: bytes


@dataclass(frozen=True)
class Settlement:
    """What recording an attempt's outcome decided."""

    state: str
    endpoint_disabled: str | None  # the reason, when this outcome disabled the endpoint
    alert_due: bool


class WebhookCommands(_Base):
    """Mixed into NotifyApplication (a ServiceApplication): webhooks' commands and queries."""

    # Set by the composition root from NotifySettings; the dev stack allows private addresses.
    webhook_allow_private: bool = False
    keystore: Keystore | None = None  # seals the endpoints' secrets
    webhook_resolve: Resolver = staticmethod(socket.getaddrinfo)  # no self: a plain resolver

    # --- fan-out (inside `react`) ---------------------------------------------------------------

    def fan_out(self, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]) -> None:
        """Schedule one delivery per enabled endpoint of the tenant subscribed to the type."""
        directory = self._directory(message.tenant)
        if directory is None:
            return
        now = self.clock()
        body = message.to_bytes().decode()
        for endpoint_id in directory.subscribers(message.type):
            if self._exists(WebhookDelivery.create_id(endpoint_id, message.id)):
                continue
            delivery = WebhookDelivery(
                tenant=message.tenant,
                endpoint_id=endpoint_id,
                event_id=message.id,
                event_type=message.type,
                refund_id=message.subject,
                body=body,
                at=now,
            )
            processing.collect_events(delivery)

    # --- endpoint commands ----------------------------------------------------------------------

    def register_endpoint(
        self,
        *,
        tenant: str,
        url: str,
        event_types: list[str],
        description: str = "",
        alert_email: str | None = None,
        actor: str,
        keyed: KeyedRequest | None = None,
        secret: str | None = None,
    ) -> tuple[WebhookEndpoint, bool]:
        """A new endpoint and its `whsec_` secret; (endpoint, replayed)."""
        self._vet({"url": url, "event_types": event_types})
        chosen = secret or new_secret()
        endpoint_id = uuid.uuid4()

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = WebhookEndpoint._create(  # with its id chosen: its key is sealed under it
                WebhookEndpoint.Registered,
                id=endpoint_id,
                tenant=tenant,
                url=url,
                event_types=event_types,
                description=description,
                alert_email=alert_email,
                secret=self._seal_secret(tenant, endpoint_id, chosen),
                actor=actor,
            )
            directory = self._directory(tenant) or EndpointDirectory(tenant=tenant)
            directory.sync(endpoint)
            return Outcome(201, endpoint.id, endpoint.version), [endpoint, directory]

        return self._run(keyed, attempt)

    def update_endpoint(
        self,
        *,
        tenant: str,
        endpoint_id: str,
        changes: dict[str, Any],
        actor: str,
        keyed: KeyedRequest | None = None,
    ) -> tuple[WebhookEndpoint, bool]:
        """Change any of url, event_types, description, alert_email; `enabled` true re-enables,
        false disables ("manual")."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        self._vet(changes)
        uid = self._endpoint_uuid(endpoint_id)

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            endpoint.change(
                url=changes.get("url", endpoint.url),
                event_types=changes.get("event_types", endpoint.event_types),
                description=changes.get("description", endpoint.description),
                alert_email=changes.get("alert_email", endpoint.alert_email),
                actor=actor,
            )
            if changes.get("enabled") is True:
                endpoint.enable(actor=actor)
            elif changes.get("enabled") is False:
                endpoint.disable(reason="manual", at=self.clock(), actor=actor)
            return self._with_directory(endpoint, 200)

        return self._run(keyed, attempt)

    def delete_endpoint(self, *, tenant: str, endpoint_id: str, actor: str) -> WebhookEndpoint:
        uid = self._endpoint_uuid(endpoint_id)

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            endpoint.delete(actor=actor)
            return self._with_directory(endpoint, 200)

        shred = secret_subject(tenant, uid)  # only this tenant's own key can be named
        try:
            deleted = self._run(None, attempt)[0]
        except EndpointNotFound:
            self._secret_keys().erase(shred, by=actor)  # a deletion cut short before its shred
            raise
        self._secret_keys().erase(shred, by=actor)  # its secrets, unreadable from now on
        return deleted

    def rotate_secret(
        self,
        *,
        tenant: str,
        endpoint_id: str,
        expire_previous_after: timedelta,
        actor: str,
        keyed: KeyedRequest | None = None,
        secret: str | None = None,
    ) -> tuple[WebhookEndpoint, bool]:
        """A new current secret; the previous one still signs until `expire_previous_after`."""
        uid = self._endpoint_uuid(endpoint_id)
        chosen = secret or new_secret()

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            if secret is not None and secret == self.endpoint_secret(endpoint):
                raise EndpointRefused("same_secret", "the new secret must differ from the current")
            endpoint.rotate_secret(
                secret=self._seal_secret(tenant, uid, chosen),
                previous_expires_at=self.clock() + expire_previous_after,
                actor=actor,
            )
            return Outcome(200, endpoint.id, endpoint.version), [endpoint]

        return self._run(keyed, attempt)

    def send_test(
        self, *, tenant: str, endpoint_id: str, keyed: KeyedRequest | None = None
    ) -> tuple[WebhookDelivery, bool]:
        """A test event to this endpoint alone, signed and retried like any other delivery
        (in its log, with its own `webhook-id`); the endpoint must be enabled."""
        uid = self._endpoint_uuid(endpoint_id)
        event_id = str(uuid.uuid4())

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            if not endpoint.enabled:
                raise EndpointRefused("endpoint_disabled", "enable the endpoint first")
            now = self.clock()
            test = WebhookTestV1(endpoint_id=endpoint_public_id(endpoint.id))
            delivery = WebhookDelivery(
                tenant=tenant,
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type=test.TYPE,
                refund_id="",  # about no refund
                body=cloud_event(test, tenant=tenant, event_id=event_id, at=now),
                at=now,
            )
            return Outcome(202, delivery.id, delivery.version), [delivery]

        return self._run(keyed, attempt)

    # --- secrets, sealed at rest ------------------------------------------------------------------

    def _secret_keys(self) -> Keystore:
        if self.keystore is None:
            raise RuntimeError("notify needs a keystore to seal webhook secrets (open_keystore)")
        return self.keystore

    def _seal_secret(self, tenant: str, endpoint_id: uuid.UUID, secret: str) -> str:
        subject = secret_subject(tenant, endpoint_id)
        return self._secret_keys().seal(subject, secret, field=SECRET_FIELD)

    def live_secrets(self, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
        """The `whsec_` secrets that sign a message sent at `now`, opened (a secret stored
        before sealing existed is used as it is; a shredded one signs nothing)."""
        keys = self._secret_keys()
        opened = (keys.reveal(s, field=SECRET_FIELD) for s in endpoint.live_secrets(now))
        return [s for s in opened if s is not None]

    def endpoint_secret(self, endpoint: WebhookEndpoint) -> str:
        """The current `whsec_` secret, opened: shown on creation and rotation only."""
        opened = self._secret_keys().reveal(endpoint.secret, field=SECRET_FIELD)
        if opened is None:
            raise EndpointRefused("deleted", "the endpoint's secrets were shredded")
        return opened

    def redeliver(
        self,
        *,
        tenant: str,
        endpoint_id: str,
        delivery_id: str,
        actor: str,
        keyed: KeyedRequest | None = None,
    ) -> tuple[WebhookDelivery, bool]:
        """Send a delivery again (same webhook-id); the endpoint must be enabled."""
        uid = self._endpoint_uuid(endpoint_id)
        did = parse_public_id(DELIVERY_PREFIX, delivery_id)
        if did is None:
            raise DeliveryNotFound(delivery_id)

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            delivery = self._delivery_of(endpoint, did)
            if not endpoint.enabled:
                raise EndpointRefused("endpoint_disabled", "enable the endpoint first")
            delivery.request_redelivery(at=self.clock(), actor=actor)
            return Outcome(202, delivery.id, delivery.version), [delivery]

        return self._run(keyed, attempt)

    # --- queries --------------------------------------------------------------------------------

    def endpoint_for(self, tenant: str, endpoint_id: str) -> WebhookEndpoint:
        return self._endpoint(tenant, self._endpoint_uuid(endpoint_id))

    def delivery_for(self, tenant: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        endpoint = self.endpoint_for(tenant, endpoint_id)
        did = parse_public_id(DELIVERY_PREFIX, delivery_id)
        if did is None:
            raise DeliveryNotFound(delivery_id)
        return self._delivery_of(endpoint, did)

    def delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery:
        found: WebhookDelivery = self.repository.get(delivery_id)
        return found

    def endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        found: WebhookEndpoint = self.repository.get(endpoint_id)
        return found

    # --- the deliverer's side -------------------------------------------------------------------

    def claim_attempt(self, delivery_id: uuid.UUID) -> Claim | None:
        """Store `AttemptStarted` for a due delivery and return what to send; None when it is
        not due (any more). A delivery to a disabled or deleted endpoint is cancelled instead."""

        def decide(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Claim | None:
            now = self.clock()
            if not delivery.is_due(now):
                return None
            if not endpoint.enabled:
                reason = "deleted" if endpoint.deleted else endpoint.disabled_reason
                delivery.cancel(at=now, reason=f"endpoint {reason}")
                return None
            n = delivery.start_attempt(at=now)
            return Claim(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                n=n,
                round_attempts=delivery.round_attempts,
                msg_id=delivery_public_id(delivery.id),
                url=endpoint.url,
                secrets=self.live_secrets(endpoint, now),
                body=delivery.body.encode(),
            )

        return self._decide(delivery_id, decide)

    def settle_attempt(
        self,
        claim: Claim,
        result: AttemptResult,
        *,
        retry_in: float | None,
        disable_after: timedelta,
    ) -> Settlement:
        """Store an attempt's outcome with its effect on the endpoint (and its directory):
        2xx delivers; 410 gives up and disables the endpoint ("gone"); anything else retries
        in `retry_in` seconds (None: gives up) and may disable it ("failing")."""

        def decide(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Settlement:
            now = self.clock()
            was = endpoint.disabled_reason
            status = result.status_code
            if status is not None and 200 <= status < 300:
                delivery.succeed(n=claim.n, at=now, result=result)
                endpoint.record_success(at=now)
            elif status is not None and is_gone(status):
                delivery.fail(n=claim.n, at=now, result=result, retry_in=None)
                endpoint.record_gone(at=now)
            else:
                delivery.fail(n=claim.n, at=now, result=result, retry_in=retry_in)
                endpoint.record_failure(at=now, disable_after=disable_after)
            disabled = endpoint.disabled_reason if was is None else None
            return Settlement(delivery.state, disabled, endpoint.alert_due)

        return self._decide(claim.delivery_id, decide)

    def mark_uncertain(self, delivery_id: uuid.UUID) -> bool:
        """Settle an attempt whose sender died as `uncertain`; False when none is in flight."""

        def change(delivery: WebhookDelivery) -> bool:
            if not delivery.in_flight:
                return False
            delivery.mark_uncertain(at=self.clock())
            return True

        return self._change([delivery_id], lambda found: change(found[0]))

    def record_alert_sent(self, endpoint_id: uuid.UUID) -> None:
        self._change([endpoint_id], lambda found: found[0].record_alert_sent(at=self.clock()))

    # --- helpers --------------------------------------------------------------------------------

    def _run(
        self, keyed: KeyedRequest | None, attempt: Callable[[], tuple[Outcome, list[Aggregate]]]
    ) -> tuple[Any, bool]:
        outcome, saved = self.execute(keyed, attempt)
        if saved is not None:
            return saved, False
        return self.repository.get(outcome.aggregate_id, version=outcome.version), True

    def _vet(self, fields: dict[str, Any]) -> None:
        errors: list[dict[str, str]] = []
        if "url" in fields:
            try:
                check_url(
                    fields["url"],
                    allow_private=self.webhook_allow_private,
                    resolve=self.webhook_resolve,
                )
            except UnsafeUrl as unsafe:
                errors.append({"field": "url", "code": "unsafe_url", "message": unsafe.reason})
        types: Sequence[str] = fields.get("event_types") or ()
        if "event_types" in fields:
            try:
                check_event_types(list(types))
            except EndpointRefused as refused:
                errors.append(
                    {"field": "event_types", "code": refused.code, "message": refused.message}
                )
        for i, name in enumerate(types):
            if name != "*" and name not in EVENT_TYPES and name not in SUBSCRIBABLE:
                errors.append(
                    {
                        "field": f"event_types.{i}",
                        "code": "unknown_event_type",
                        "message": f"no event type {name!r}; see GET /v1/webhook_event_types",
                    }
                )
        if errors:
            raise InvalidEndpoint(errors)

    def _with_directory(
        self, endpoint: WebhookEndpoint, status: int
    ) -> tuple[Outcome, list[Aggregate]]:
        directory = self._directory(endpoint.tenant) or EndpointDirectory(tenant=endpoint.tenant)
        directory.sync(endpoint)
        return Outcome(status, endpoint.id, endpoint.version), [endpoint, directory]

    def _exists(self, aggregate_id: uuid.UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    def _directory(self, tenant: str) -> EndpointDirectory | None:
        try:
            found: EndpointDirectory = self.repository.get(EndpointDirectory.create_id(tenant))
        except AggregateNotFoundError:
            return None
        return found

    @staticmethod
    def _endpoint_uuid(endpoint_id: str) -> uuid.UUID:
        uid = parse_public_id(ENDPOINT_PREFIX, endpoint_id)
        if uid is None:
            raise EndpointNotFound(endpoint_id)
        return uid

    def _endpoint(self, tenant: str, uid: uuid.UUID) -> WebhookEndpoint:
        try:
            endpoint: Any = self.repository.get(uid)
        except AggregateNotFoundError:
            raise EndpointNotFound(endpoint_public_id(uid)) from None
        if not isinstance(endpoint, WebhookEndpoint) or endpoint.tenant != tenant:
            raise EndpointNotFound(endpoint_public_id(uid))
        if endpoint.deleted:
            raise EndpointNotFound(endpoint_public_id(uid))
        return endpoint

    def _delivery_of(self, endpoint: WebhookEndpoint, did: uuid.UUID) -> WebhookDelivery:
        try:
            delivery: Any = self.repository.get(did)
        except AggregateNotFoundError:
            raise DeliveryNotFound(delivery_public_id(did)) from None
        if not isinstance(delivery, WebhookDelivery) or delivery.endpoint_id != endpoint.id:
            raise DeliveryNotFound(delivery_public_id(did))
        return delivery

    def _decide(
        self,
        delivery_id: uuid.UUID,
        decide: Callable[[WebhookDelivery, WebhookEndpoint], T],
    ) -> T:
        """Decide on a delivery with its endpoint; save them and the endpoint's directory
        together, so a disabled endpoint and its directory entry never disagree."""

        def change(found: list[Any]) -> T:
            delivery = cast(WebhookDelivery, found[0])
            endpoint = self.endpoint(delivery.endpoint_id)
            enabled = endpoint.enabled
            result = decide(delivery, endpoint)
            found.append(endpoint)
            directory = self._directory(endpoint.tenant)
            if directory is not None:
                directory.sync(endpoint)
                found.append(directory)
                if enabled and not endpoint.enabled:  # disabled by us: tell the others
                    found.extend(self._disabled_notices(directory, endpoint))
            return result

        return self._change([delivery_id], change)

    def _disabled_notices(
        self, directory: EndpointDirectory, endpoint: WebhookEndpoint
    ) -> list[WebhookDelivery]:
        """`webhook.endpoint_disabled.v1` for each other enabled endpoint of the tenant that
        subscribes to it, stored with the disabling itself."""
        assert endpoint.disabled_at is not None and endpoint.disabled_reason is not None
        notice = WebhookEndpointDisabledV1(
            endpoint_id=endpoint_public_id(endpoint.id),
            url=endpoint.url,
            reason=cast(Any, endpoint.disabled_reason),
            failing_since=endpoint.failing_since,
            disabled_at=endpoint.disabled_at,
        )
        event_id = disabled_event_id(endpoint.id, endpoint.disabled_at)
        now = self.clock()
        body = cloud_event(notice, tenant=endpoint.tenant, event_id=event_id, at=now)
        return [
            WebhookDelivery(
                tenant=endpoint.tenant,
                endpoint_id=other,
                event_id=event_id,
                event_type=notice.TYPE,
                refund_id="",  # about no refund
                body=body,
                at=now,
            )
            for other in directory.subscribers(notice.TYPE)
            if other != endpoint.id
        ]

    def _change(self, ids: list[uuid.UUID], change: Callable[[list[Any]], T]) -> T:
        """Load, decide, save in one transaction; on a concurrent write, redo on fresh state.
        `change` may append further aggregates it loaded and changed."""
        for _ in range(self.max_conflict_retries):
            found: list[Any] = [self.repository.get(uid) for uid in ids]
            result = change(found)
            try:
                self.save(*found)
            except IntegrityError:
                continue
            return result
        raise RuntimeError(f"could not update {ids}: persistent conflict")
