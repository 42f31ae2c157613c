"""Platform webhooks, the tenant's side: registering, changing, rotating, deleting and testing
endpoints, redelivering, and looking endpoints and deliveries up.

Each command decides on freshly loaded aggregates and saves them, with the tenant's endpoint
directory and the Idempotency-Key record, in one transaction (`ServiceApplication.execute`).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from services.notify.webhooks.deliveries import WebhookDelivery
from services.notify.webhooks.endpoints import (
    ANY_TYPE,
    EndpointDirectory,
    EndpointRefused,
    WebhookEndpoint,
    check_event_types,
)
from services.notify.webhooks.operational import OFFERED, WebhookTestV1, cloud_event
from services.notify.webhooks.safety import Resolver, UnsafeUrl, check_url
from services.notify.webhooks.secrets import EndpointSecrets
from services.notify.webhooks.signing import new_secret
from shared.application import ServiceApplication
from shared.idempotency import KeyedRequest, Outcome
from shared.ids import parse_public_id, public_id
from shared.keystore import Keystore

ENDPOINT_PREFIX = "we"
DELIVERY_PREFIX = "wd"
EDITABLE = ("url", "event_types", "description", "alert_email", "enabled")
Attempt = Callable[[], tuple[Outcome, list[Aggregate]]]
A = TypeVar("A", bound=Aggregate)


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


class Webhooks:
    """Tenants' endpoints in notify's store: their commands and queries."""

    def __init__(self, app: ServiceApplication, keys: Callable[[], Keystore]) -> None:
        self.app = app
        self.secrets = EndpointSecrets(keys)
        # Set by the composition root from NotifySettings; the dev stack allows private
        # addresses. Tests give a resolver of their own.
        self.allow_private = False
        self.resolve: Resolver = socket.getaddrinfo

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
                secret=self.secrets.seal(tenant, endpoint_id, chosen),
                actor=actor,
            )
            return self._with_directory(endpoint, 201)

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
        uid = _endpoint_uuid(endpoint_id)

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
                endpoint.disable(reason="manual", at=self.app.clock(), actor=actor)
            return self._with_directory(endpoint, 200)

        return self._run(keyed, attempt)

    def delete_endpoint(self, *, tenant: str, endpoint_id: str, actor: str) -> WebhookEndpoint:
        uid = _endpoint_uuid(endpoint_id)

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            endpoint.delete(actor=actor)
            return self._with_directory(endpoint, 200)

        try:
            deleted: WebhookEndpoint = self._run(None, attempt)[0]
        except EndpointNotFound:
            self.secrets.shred(tenant, uid, by=actor)  # a deletion cut short before its shred
            raise
        self.secrets.shred(tenant, uid, by=actor)  # its secrets, unreadable from now on
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
        uid = _endpoint_uuid(endpoint_id)
        chosen = secret or new_secret()

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            if secret is not None and secret == self.secrets.current(endpoint):
                raise EndpointRefused("same_secret", "the new secret must differ from the current")
            endpoint.rotate_secret(
                secret=self.secrets.seal(tenant, uid, chosen),
                previous_expires_at=self.app.clock() + expire_previous_after,
                actor=actor,
            )
            return Outcome(200, endpoint.id, endpoint.version), [endpoint]

        return self._run(keyed, attempt)

    def send_test(
        self, *, tenant: str, endpoint_id: str, keyed: KeyedRequest | None = None
    ) -> tuple[WebhookDelivery, bool]:
        """A test event to this endpoint alone, signed and retried like any other delivery
        (in its log, with its own `webhook-id`); the endpoint must be enabled."""
        uid = _endpoint_uuid(endpoint_id)
        event_id = str(uuid.uuid4())

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = _enabled(self._endpoint(tenant, uid))
            now = self.app.clock()
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
        uid = _endpoint_uuid(endpoint_id)
        did = _delivery_uuid(delivery_id)

        def attempt() -> tuple[Outcome, list[Aggregate]]:
            endpoint = self._endpoint(tenant, uid)
            delivery = self._delivery_of(endpoint, did)
            _enabled(endpoint)
            delivery.request_redelivery(at=self.app.clock(), actor=actor)
            return Outcome(202, delivery.id, delivery.version), [delivery]

        return self._run(keyed, attempt)

    # --- queries --------------------------------------------------------------------------------

    def endpoint_for(self, tenant: str, endpoint_id: str) -> WebhookEndpoint:
        return self._endpoint(tenant, _endpoint_uuid(endpoint_id))

    def delivery_for(self, tenant: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        endpoint = self.endpoint_for(tenant, endpoint_id)
        return self._delivery_of(endpoint, _delivery_uuid(delivery_id))

    def delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery:
        found: WebhookDelivery = self.app.repository.get(delivery_id)
        return found

    def endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        found: WebhookEndpoint = self.app.repository.get(endpoint_id)
        return found

    def directory(self, tenant: str) -> EndpointDirectory | None:
        try:
            found: EndpointDirectory = self.app.repository.get(EndpointDirectory.create_id(tenant))
        except AggregateNotFoundError:
            return None
        return found

    def exists(self, aggregate_id: uuid.UUID) -> bool:
        try:
            self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    # --- helpers --------------------------------------------------------------------------------

    def _run(self, keyed: KeyedRequest | None, attempt: Attempt) -> tuple[Any, bool]:
        return self.app.execute_once(keyed, attempt, Aggregate)

    def _vet(self, fields: dict[str, Any]) -> None:
        errors: list[dict[str, str]] = []
        if "url" in fields:
            try:
                check_url(fields["url"], allow_private=self.allow_private, resolve=self.resolve)
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
        errors += [
            {
                "field": f"event_types.{i}",
                "code": "unknown_event_type",
                "message": f"no event type {name!r}; see GET /v1/webhook_event_types",
            }
            for i, name in enumerate(types)
            if name != ANY_TYPE and name not in OFFERED
        ]
        if errors:
            raise InvalidEndpoint(errors)

    def _with_directory(
        self, endpoint: WebhookEndpoint, status: int
    ) -> tuple[Outcome, list[Aggregate]]:
        directory = self.directory(endpoint.tenant) or EndpointDirectory(tenant=endpoint.tenant)
        directory.sync(endpoint)
        return Outcome(status, endpoint.id, endpoint.version), [endpoint, directory]

    def _endpoint(self, tenant: str, uid: uuid.UUID) -> WebhookEndpoint:
        """The tenant's endpoint; another tenant's, or a deleted one, is not found either."""
        endpoint = self._found(uid, WebhookEndpoint)
        if endpoint is None or endpoint.tenant != tenant or endpoint.deleted:
            raise EndpointNotFound(endpoint_public_id(uid))
        return endpoint

    def _delivery_of(self, endpoint: WebhookEndpoint, did: uuid.UUID) -> WebhookDelivery:
        delivery = self._found(did, WebhookDelivery)
        if delivery is None or delivery.endpoint_id != endpoint.id:
            raise DeliveryNotFound(delivery_public_id(did))
        return delivery

    def _found(self, aggregate_id: uuid.UUID, kind: type[A]) -> A | None:
        """The aggregate, if there is one of that kind (an id of another kind finds none)."""
        try:
            found: Aggregate = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None


def _endpoint_uuid(endpoint_id: str) -> uuid.UUID:
    uid = parse_public_id(ENDPOINT_PREFIX, endpoint_id)
    if uid is None:
        raise EndpointNotFound(endpoint_id)
    return uid


def _delivery_uuid(delivery_id: str) -> uuid.UUID:
    did = parse_public_id(DELIVERY_PREFIX, delivery_id)
    if did is None:
        raise DeliveryNotFound(delivery_id)
    return did


def _enabled(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Only an enabled endpoint is sent to, be it a test or a redelivery."""
    if not endpoint.enabled:
        raise EndpointRefused("endpoint_disabled", "enable the endpoint first")
    return endpoint
