"""Endpoint signing secrets at rest: sealed (AES-256-GCM) under a key of the endpoint's own in
the shared keystore, opened only to sign, shredded with the endpoint.

So no stored event, audit entry or backup holds a secret in clear, and deleting the endpoint
makes its secrets unreadable everywhere. Tenant names never hold ":", so no customer's key
subject collides with an endpoint's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from services.notify.webhooks.endpoints import EndpointRefused, WebhookEndpoint
from shared.keystore import Keystore, Subject

SECRET_FIELD = "webhook.secret"  # noqa: S105 (the sealed field's name, not a secret)


def secret_subject(tenant: str, endpoint_id: uuid.UUID) -> Subject:
    return (f"webhooks:{tenant}", str(endpoint_id))


class EndpointSecrets:
    """Seals, opens and shreds the `whsec_` secrets of endpoints."""

    def __init__(self, keys: Callable[[], Keystore]) -> None:
        self._keys = keys  # the application's keystore, looked up when first needed

    def seal(self, tenant: str, endpoint_id: uuid.UUID, secret: str) -> str:
        subject = secret_subject(tenant, endpoint_id)
        return self._keys().seal(subject, secret, field=SECRET_FIELD)

    def live(self, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
        """The `whsec_` secrets that sign a message sent at `now`, opened (a secret stored
        before sealing existed is used as it is; a shredded one signs nothing)."""
        keys = self._keys()
        opened = (keys.reveal(s, field=SECRET_FIELD) for s in endpoint.live_secrets(now))
        return [s for s in opened if s is not None]

    def current(self, endpoint: WebhookEndpoint) -> str:
        """The current `whsec_` secret, opened: shown on creation and rotation only."""
        opened = self._keys().reveal(endpoint.secret, field=SECRET_FIELD)
        if opened is None:
            raise EndpointRefused("deleted", "the endpoint's secrets were shredded")
        return opened

    def shred(self, tenant: str, endpoint_id: uuid.UUID, *, by: str) -> None:
        """Make every secret the endpoint ever had unreadable (only this tenant's own key can
        be named: the subject is built from the tenant asking)."""
        self._keys().erase(secret_subject(tenant, endpoint_id), by=by)
