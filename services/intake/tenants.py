"""Platform API keys issued to tenants, kept in intake's event store.

Only a key's SHA-256 hash and a short display prefix are stored; the key itself
is returned once, by `issue_key`, and never written anywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from shared.ids import derived_id

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
KEY_SCHEME = "sk_"
PREFIX_LENGTH = 12  # `sk_` and 9 characters: enough to tell keys apart, useless to guess one
MAX_LABEL_LENGTH = 200
KEY_HASH = re.compile(r"^[0-9a-f]{64}$")
PAGE_SIZE = 500

StoreApp = Application[uuid.UUID]


class UnknownApiKey(LookupError):
    """No stored key matches, or a prefix matches more than one."""


class ApiKey(Aggregate):
    """One platform API key of one tenant, known by its hash; revocation is final.

    Other services learn keys from intake's integration events (`api_key.issued.v1`,
    `api_key.revoked.v1`; services/intake/publishing.py). Keys issued before those were
    published are announced once instead (`announce_keys`).
    """

    class Issued(Aggregate.Created):
        class_version = 2
        tenant: str
        key_hash: str
        prefix: str
        label: str
        actor: str
        announced: bool  # published as it was issued (api_key.issued.v1)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Keys issued by earlier builds were never published: announce_keys does it.
            state["announced"] = False

        # What `Announced` records, read the same way (not stored: no part of the shape).
        @property
        def issued_by(self) -> str:
            return self.actor

        @property
        def issued_at(self) -> datetime:
            return self.timestamp

    class Revoked(Aggregate.Event):
        class_version = 2
        actor: str
        reason: str
        tenant: str  # so that the relay maps the event alone

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Revocations stored by earlier builds did not record the tenant. The relay had
            # passed them; republished (the broker lost its data), they name the key by its
            # id, which is what subscribers look revocations up by.
            state["tenant"] = ""

    class Announced(Aggregate.Event):
        """A key issued before keys were published, published now: what `Issued` says."""

        tenant: str
        key_hash: str
        prefix: str
        issued_by: str
        issued_at: datetime

    @staticmethod
    def create_id(key_hash: str) -> uuid.UUID:
        return derived_id("api-key", key_hash)

    @event(Issued)
    def __init__(
        self,
        *,
        tenant: str,
        key_hash: str,
        prefix: str,
        label: str,
        actor: str,
        announced: bool,
    ) -> None:
        self.tenant, self.key_hash, self.prefix, self.label = tenant, key_hash, prefix, label
        self.issued_by = actor
        self.announced = announced
        self.revoked = False

    def revoke(self, *, actor: str, reason: str) -> None:
        if not self.revoked:
            self._revoked(actor=actor, reason=reason, tenant=self.tenant)

    @event(Revoked)
    def _revoked(self, actor: str, reason: str, tenant: str) -> None:
        self.revoked = True

    def announce(self) -> bool:
        """Publish a live key that never was; False when there is nothing to announce (a
        revoked key is refused everywhere whether it was announced or not)."""
        if self.announced or self.revoked:
            return False
        self._announced(self.tenant, self.key_hash, self.prefix, self.issued_by, self.created_on)
        return True

    @event(Announced)
    def _announced(
        self, tenant: str, key_hash: str, prefix: str, issued_by: str, issued_at: datetime
    ) -> None:
        self.announced = True

    @property
    def revoked_on(self) -> datetime | None:
        # Revoked is the last event a key can have (a revoked key is never announced), so
        # it set modified_on.
        return self.modified_on if self.revoked else None

    def summary(self) -> dict[str, Any]:
        return _summary(self.prefix, self.tenant, self.label, self.created_on, self.revoked_on)


def check_tenant(name: str) -> str:
    """The tenant name, or ValueError saying what a valid one looks like."""
    if not TENANT_NAME.fullmatch(name):
        raise ValueError(
            f"invalid tenant name {name!r}: 2-63 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def key_hash(key: str) -> str:
    """SHA-256 of the key, hex — the same digest shared.auth compares."""
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(app: StoreApp, tenant: str, *, label: str = "", actor: str) -> str:
    """Store a new key for `tenant` (its hash only) and return the key: the one time it is seen."""
    check_tenant(tenant)
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"label longer than {MAX_LABEL_LENGTH} characters")
    key = KEY_SCHEME + secrets.token_urlsafe(32)
    app.save(
        ApiKey(
            tenant=tenant,
            key_hash=key_hash(key),
            prefix=key[:PREFIX_LENGTH],
            label=label,
            actor=actor,
            announced=True,  # its Issued event is published as it is
        )
    )
    return key


def tenant_for_hash(app: StoreApp, hashed: str) -> str | None:
    """The tenant of a stored, unrevoked key with this hash; None otherwise."""
    key = _get(app, hashed)
    return None if key is None or key.revoked else key.tenant


def list_keys(app: StoreApp, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every stored key, oldest first: prefix, tenant, label, created, revoked (time or None)."""
    issued: dict[uuid.UUID, ApiKey.Issued] = {}
    revoked: dict[uuid.UUID, datetime] = {}
    for fact in _key_events(app):
        if isinstance(fact, ApiKey.Issued):
            issued[fact.originator_id] = fact
        elif isinstance(fact, ApiKey.Revoked):
            revoked[fact.originator_id] = fact.timestamp
    return [
        _summary(fact.prefix, fact.tenant, fact.label, fact.timestamp, revoked.get(key_id))
        for key_id, fact in issued.items()
        if tenant is None or fact.tenant == tenant
    ]


def revoke_key(app: StoreApp, prefix_or_hash: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Revoke the key with this display prefix (or hash); its summary afterwards.

    Revoking a revoked key changes nothing. Raises UnknownApiKey when nothing,
    or more than one key, matches.
    """
    key_id = _find(app, prefix_or_hash)
    for _ in range(3):
        key: ApiKey = app.repository.get(key_id)
        key.revoke(actor=actor, reason=reason)
        try:
            app.save(key)
        except IntegrityError:  # revoked concurrently: reload and see
            continue
        return key.summary()
    raise RuntimeError(f"could not revoke {prefix_or_hash}: persistent conflict")


def _get(app: StoreApp, hashed: str) -> ApiKey | None:
    if not KEY_HASH.fullmatch(hashed):
        return None
    try:
        key: Aggregate = app.repository.get(ApiKey.create_id(hashed))
    except AggregateNotFoundError:
        return None
    return key if isinstance(key, ApiKey) else None


def announce_keys(app: StoreApp) -> int:
    """Announce every live key that was never published (issued by an earlier build); how
    many this call announced. Idempotent, and safe with several processes at once: the
    second to save an announcement conflicts, and the key it reloads is announced."""
    announced = 0
    for key_id in _unannounced(app):
        for _ in range(3):
            key: ApiKey = app.repository.get(key_id)
            if not key.announce():
                break
            try:
                app.save(key)
            except IntegrityError:  # announced or revoked concurrently: reload and see
                continue
            announced += 1
            break
    return announced


def _unannounced(app: StoreApp) -> list[uuid.UUID]:
    """Keys whose `Issued` was stored unannounced, and that are neither announced nor
    revoked since (read from the log, so that announced keys are not loaded again)."""
    waiting: dict[uuid.UUID, None] = {}
    for fact in _key_events(app, ApiKey.Issued, ApiKey.Announced, ApiKey.Revoked):
        if isinstance(fact, ApiKey.Issued):
            if not fact.announced:
                waiting[fact.originator_id] = None
        else:
            waiting.pop(fact.originator_id, None)
    return list(waiting)


def _find(app: StoreApp, prefix_or_hash: str) -> uuid.UUID:
    if KEY_HASH.fullmatch(prefix_or_hash):
        if _get(app, prefix_or_hash) is None:
            raise UnknownApiKey(f"no API key with hash {prefix_or_hash}")
        return ApiKey.create_id(prefix_or_hash)
    matches = [
        fact.originator_id
        for fact in _key_events(app, ApiKey.Issued)
        if isinstance(fact, ApiKey.Issued) and fact.prefix == prefix_or_hash
    ]
    if not matches:
        raise UnknownApiKey(f"no API key with prefix {prefix_or_hash!r}")
    if len(matches) > 1:
        raise UnknownApiKey(f"{len(matches)} keys have prefix {prefix_or_hash!r}; give the hash")
    return matches[0]


def _key_events(app: StoreApp, *kinds: type[Aggregate.Event]) -> Iterator[Any]:
    """ApiKey events from the application's notification log, in log order."""
    topics = [get_topic(kind) for kind in kinds or (ApiKey.Issued, ApiKey.Revoked)]
    position = 0
    while True:
        page = app.recorder.select_notifications(
            start=position, limit=PAGE_SIZE, topics=topics, inclusive_of_start=False
        )
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        if len(page) < PAGE_SIZE:
            return
        position = page[-1].id


def _summary(
    prefix: str, tenant: str, label: str, created: datetime, revoked: datetime | None
) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "tenant": tenant,
        "label": label,
        "created": created,
        "revoked": revoked,
    }
