"""Platform API keys issued to tenants, kept in intake's event store.

Only a key's SHA-256 hash and a short display prefix are stored; the key itself
is returned once, by `issue_key`, and never written anywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy
from shared.vocabulary import TENANT_NAME as TENANT_NAME

KEY_SCHEME = "sk_"
PREFIX_LENGTH = 12  # `sk_` and 9 characters: enough to tell keys apart, useless to guess one
MAX_LABEL_LENGTH = 200
KEY_HASH = re.compile(r"^[0-9a-f]{64}$")

StoreApp = Application[uuid.UUID]


class UnknownApiKey(LookupError):
    """No stored key matches, or a prefix matches more than one."""


class ApiKey(QuickCopy, Aggregate):
    """One platform API key of one tenant, known by its hash; revocation is final.

    Other services learn keys from intake's integration events (`api_key.issued.v1`,
    `api_key.revoked.v1`; services/intake/publishing.py). Keys issued before those were
    published are announced once instead (`announce_keys`, services/intake/key_index.py).
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
        return key_summary(self.prefix, self.tenant, self.label, self.created_on, self.revoked_on)


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


def new_key(tenant: str, *, label: str = "", actor: str) -> tuple[ApiKey, str]:
    """A new key for `tenant`, not yet saved (the aggregate holds its hash only), and the key."""
    check_tenant(tenant)
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"label longer than {MAX_LABEL_LENGTH} characters")
    key = KEY_SCHEME + secrets.token_urlsafe(32)
    stored = ApiKey(
        tenant=tenant,
        key_hash=key_hash(key),
        prefix=key[:PREFIX_LENGTH],
        label=label,
        actor=actor,
        announced=True,  # its Issued event is published as it is
    )
    return stored, key


def issue_key(app: StoreApp, tenant: str, *, label: str = "", actor: str) -> str:
    """Store a new key for `tenant` (its hash only) and return the key: the one time it is seen."""
    stored, key = new_key(tenant, label=label, actor=actor)
    app.save(stored)
    return key


def tenant_for_hash(app: StoreApp, hashed: str) -> str | None:
    """The tenant of a stored, unrevoked key with this hash; None otherwise."""
    key = find_key(app, hashed)
    return None if key is None or key.revoked else key.tenant


def find_key(app: StoreApp, hashed: str) -> ApiKey | None:
    """The stored key with this hash (revoked or not); None for no key or no hash."""
    if not KEY_HASH.fullmatch(hashed):
        return None
    try:
        key: Aggregate = app.repository.get(ApiKey.create_id(hashed))
    except AggregateNotFoundError:
        return None
    return key if isinstance(key, ApiKey) else None


def key_summary(
    prefix: str, tenant: str, label: str, created: datetime, revoked: datetime | None
) -> dict[str, Any]:
    """A key as `refunds api-keys list|revoke` show it (never its hash)."""
    return {
        "prefix": prefix,
        "tenant": tenant,
        "label": label,
        "created": created,
        "revoked": revoked,
    }
