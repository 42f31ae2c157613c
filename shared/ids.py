"""Prefixed public ids (`rf_…`) over the UUIDs aggregates use inside the store."""

from __future__ import annotations

import uuid
from functools import lru_cache

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
    return uuid.uuid5(NAMESPACE, "/".join(parts))
