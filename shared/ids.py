"""Prefixed public ids (`rf_…`) over the UUIDs aggregates use inside the store."""

from __future__ import annotations

import uuid
from functools import lru_cache
from hashlib import sha1

NAMESPACE = uuid.UUID("0f4e3a8e-5d1b-4c55-8a43-93b1c7a0e6d2")


def public_id(prefix: str, value: uuid.UUID) -> str:
    return f"{prefix}_{value.hex}"


def parse_public_id(prefix: str, text: str) -> uuid.UUID | None:
    """The UUID behind `prefix_<32 hex>`, or None for anything else (answer 404, never 500)."""
    head, sep, tail = text.partition("_")
    if head != prefix or not sep or len(tail) != 32:
        return None
    try:
        return uuid.UUID(hex=tail)
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def derived_id(*parts: str) -> uuid.UUID:
    """A deterministic id, so a repeated command or message addresses the same aggregate.
    Remembered: the same ids are derived again and again (a message's id at each step of
    its delivery), and uuid5 hashes every time. UUIDs are immutable, so sharing is safe."""
    return uuid5(NAMESPACE, "/".join(parts))


# RFC 4122 variant and version 5, as `uuid.UUID(bytes=…, version=5)` sets them.
_CLEARED = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_5 = (0x8000 << 48) | (5 << 76)


def uuid5(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """`uuid.uuid5`, the same UUID, at half its cost: Python 3.11's imports hashlib at each
    call and builds the UUID through the constructor's argument checks. Event ids, trace ids
    and aggregate ids are derived this way for every stored and published event."""
    digest = sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()  # RFC 4122
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", int.from_bytes(digest[:16]) & _CLEARED | _VERSION_5)
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made
