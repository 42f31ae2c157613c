"""Intake's platform API keys as a read model: what `refunds api-keys list|revoke` and the
start-up announcement read, kept from the log from its own position.

One row per key (tenant, prefix, label, when issued and revoked, whether announced, version);
the keys themselves, and their hashes, stay in the `ApiKey` aggregates (services/intake/tenants.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from services.intake.tenants import KEY_HASH, ApiKey, UnknownApiKey, find_key, key_summary
from shared.application import ServiceApplication
from shared.readmodel import ReadModel, sortable

__all__ = ["ApiKeyIndex", "announce_keys", "list_keys", "revoke_key"]


class ApiKeyIndex(ReadModel):
    """One row per key, caught up from the saved position before each read."""

    name = "api_keys"
    schema = (
        "key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, prefix TEXT NOT NULL, "
        "label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, "
        "announced INTEGER NOT NULL, version BIGINT NOT NULL"
    )
    columns = (
        "key_id",
        "tenant",
        "prefix",
        "label",
        "created_at",
        "revoked_at",
        "announced",
        "version",
    )
    changing = ("revoked_at", "announced", "version")
    time_column = "created_at"
    topic_marker = ":ApiKey."  # topics look like "services.intake.tenants:ApiKey.Issued"

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        key: ApiKey = aggregate
        revoked = key.revoked_on
        return (
            str(key.id),
            key.tenant,
            key.prefix,
            key.label,
            sortable(key.created_on),
            None if revoked is None else sortable(revoked),
            int(key.announced),
            key.version,
        )

    def keys(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every key (of `tenant`, if given), oldest first, as `ApiKey.summary()` says it."""
        found, _ = self.fetch({"tenant": tenant})
        return [
            key_summary(prefix, owner, label, _time(created), _time(revoked) if revoked else None)
            for _, owner, prefix, label, created, revoked, _, _ in reversed(found)
        ]

    def with_prefix(self, prefix: str) -> list[uuid.UUID]:
        """The keys whose display prefix this is (more than one only by a rare chance)."""
        found, _ = self.fetch({"prefix": prefix})
        return [uuid.UUID(str(row[0])) for row in found]

    def unannounced(self) -> list[uuid.UUID]:
        """Live keys never published (issued by a build before keys were), oldest first."""
        found, _ = self.fetch({"announced": 0}, where=["revoked_at IS NULL"])
        return [uuid.UUID(str(row[0])) for row in reversed(found)]


def _time(text: str) -> datetime:
    """`sortable()` text back to the time it was (an aware UTC datetime)."""
    return datetime.fromisoformat(text)


def list_keys(app: ServiceApplication, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every stored key, oldest first: prefix, tenant, label, created, revoked (time or None)."""
    return ApiKeyIndex(app).keys(tenant)


def revoke_key(
    app: ServiceApplication,
    prefix_or_hash: str,
    *,
    actor: str,
    reason: str,
    forget: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Revoke the key with this display prefix (or hash); its summary afterwards.

    Revoking a revoked key changes nothing. Raises UnknownApiKey when nothing,
    or more than one key, matches. `forget(key_hash)` is called once the revocation is
    stored (and for a key already revoked): the caller's key cache drops the key's answer.
    """
    key_id = _find(app, prefix_or_hash)
    for _ in range(3):
        key: ApiKey = app.repository.get(key_id)
        key.revoke(actor=actor, reason=reason)
        try:
            app.save(key)
        except IntegrityError:  # revoked concurrently: reload and see
            continue
        if forget is not None:
            forget(key.key_hash)
        return key.summary()
    raise RuntimeError(f"could not revoke {prefix_or_hash}: persistent conflict")


def _find(app: ServiceApplication, prefix_or_hash: str) -> uuid.UUID:
    if KEY_HASH.fullmatch(prefix_or_hash):
        if find_key(app, prefix_or_hash) is None:
            raise UnknownApiKey(f"no API key with hash {prefix_or_hash}")
        return ApiKey.create_id(prefix_or_hash)
    matches = ApiKeyIndex(app).with_prefix(prefix_or_hash)
    if not matches:
        raise UnknownApiKey(f"no API key with prefix {prefix_or_hash!r}")
    if len(matches) > 1:
        raise UnknownApiKey(f"{len(matches)} keys have prefix {prefix_or_hash!r}; give the hash")
    return matches[0]


def announce_keys(app: ServiceApplication) -> int:
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


def _unannounced(app: ServiceApplication) -> list[uuid.UUID]:
    """Keys stored unannounced, and neither announced nor revoked since (read from the index,
    so that announced keys are not loaded again)."""
    return ApiKeyIndex(app).unannounced()
