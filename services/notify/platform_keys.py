"""The platform API keys issued with `refunds api-keys`, as notify keeps them for its own API.

Intake issues and revokes the keys and announces each (`api_key.issued.v1`,
`api_key.revoked.v1` on its topic); notify records every key as a `PlatformKey` in its own
store, in the same transaction as the consumer's tracking, and answers `ApiKeys`' look-up from a
read model by key hash — it never opens intake's store. Only the key's SHA-256 is kept.

Revocation is final: a key revoked before its issue arrived stays revoked once it does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate, event

from services.notify.follow import TopicReadModel, events_of, stored_topics
from shared.application import ServiceApplication
from shared.contracts import ApiKeyIssuedV1, ApiKeyRevokedV1, IntegrationEvent
from shared.ids import derived_id
from shared.quick_copy import QuickCopy
from shared.readmodel import sortable
from shared.store import create_tables


@dataclass
class PlatformKey(QuickCopy, Aggregate, created_event_name="Noted"):
    """One key, by its id (`ak_…`): whose it is, its hash, and whether it was revoked."""

    key_id: str
    tenant: str = field(default="", init=False)
    key_hash: str = field(default="", init=False)  # unknown until the issue arrives
    revoked: bool = field(default=False, init=False)

    class Issued(Aggregate.Event):
        tenant: str
        key_hash: str
        prefix: str  # the key's first characters, to tell a tenant's keys apart
        issued_at: datetime

    class Revoked(Aggregate.Event):
        revoked_at: datetime

    @staticmethod
    def create_id(key_id: str) -> uuid.UUID:
        # Whichever of the key's events arrives first opens it, at the same id.
        return derived_id("platform-key", key_id)

    def issue(self, tenant: str, key_hash: str, prefix: str, at: datetime) -> None:
        """Record the key's issue; the same issue again changes nothing."""
        if not self.key_hash:
            self._issued(tenant=tenant, key_hash=key_hash, prefix=prefix, issued_at=at)

    @event(Issued)
    def _issued(self, *, tenant: str, key_hash: str, prefix: str, issued_at: datetime) -> None:
        self.tenant = tenant
        self.key_hash = key_hash

    def revoke(self, at: datetime) -> None:
        """Revoke it for good; a second revocation changes nothing."""
        if not self.revoked:
            self._revoked(revoked_at=at)

    @event(Revoked)
    def _revoked(self, *, revoked_at: datetime) -> None:
        self.revoked = True


def record_platform_key(
    app: ServiceApplication, payload: IntegrationEvent, into: ProcessingEvent[uuid.UUID]
) -> bool:
    """Keep the key an upstream event announces, into the reaction stored with its tracking;
    False when `payload` is not about a key. (Who issued or revoked it is intake's record: the
    audit stamp names the upstream event.)"""
    if not isinstance(payload, ApiKeyIssuedV1 | ApiKeyRevokedV1):
        return False
    key_id = payload.refund_id  # a key's events name the key where others name the refund
    try:
        key: PlatformKey = app.repository.get(PlatformKey.create_id(key_id))
    except AggregateNotFoundError:
        key = PlatformKey(key_id=key_id)
    if isinstance(payload, ApiKeyIssuedV1):
        key.issue(payload.tenant, payload.key_hash, payload.prefix, payload.issued_at)
    else:  # its tenant may be "" (revocations stored by older intake builds): not needed
        key.revoke(payload.revoked_at)
    into.collect_events(key)
    return True


class PlatformKeyIndex(TopicReadModel):
    """Keys by hash, for the look-up on each request with a key not in REFUNDS_API_KEYS."""

    name = "platform_key_index"
    schema = (
        "key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, tenant TEXT NOT NULL, "
        "revoked INTEGER NOT NULL, noted_at TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = ("key_id", "key_hash", "tenant", "revoked", "noted_at", "version")
    changing = ("key_hash", "tenant", "revoked", "version")
    time_column = "noted_at"
    topic_marker = ":PlatformKey."
    topics = stored_topics(events_of(PlatformKey), {})

    def __init__(self, app: ServiceApplication) -> None:
        super().__init__(app)
        index = f"CREATE INDEX IF NOT EXISTS {self.name}_by_hash ON {self.table} (key_hash)"
        create_tables(self._datastore, [index])

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        k: PlatformKey = aggregate
        return (k.key_id, k.key_hash, k.tenant, int(k.revoked), sortable(k.created_on), k.version)

    def tenant_for_hash(self, key_hash: str) -> str | None:
        """The tenant of the live key with this SHA-256 (hex); None if unknown or revoked.
        Caught up with the log first, so a key stored a moment ago is found."""
        found, _ = self.fetch({"key_hash": key_hash, "revoked": 0}, limit=1)
        return str(found[0][2]) if found else None
