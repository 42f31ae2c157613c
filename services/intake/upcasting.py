"""Intake: the shapes earlier builds stored, and how each is read today.

(`ApiKey.Issued`/`Revoked` carry their own upcasters, in tenants.py.)
"""

from __future__ import annotations

from typing import Any

from services.intake.domain import RefundRequest
from shared.upcasting import set_upcasters


def _requested(state: dict[str, Any]) -> None:
    """a2f9b37 stored `request_key` and `fingerprint`, not `items_named` (b5bba4f) nor
    `raised_by` (5f9ee7d)."""
    # The request's idempotency is the IdempotencyKey aggregate's now.
    state.pop("request_key", None)
    state.pop("fingerprint", None)
    # The first API (058f5d7) stored the whole order's items when a request named none, and
    # the event does not say which it was: reserve the amount only, not every item.
    state.setdefault("items_named", False)
    state.setdefault("raised_by", None)  # raised by the platform, as every request then was


# Stored as version 2 from now on. Every event stored so far has no version (1), whether
# a development build or 0.1.0 wrote it: each upcaster recognises the older shape by its
# keys and leaves 0.1.0's as it is (tests/e2e/test_frozen_stores.py loads 0.1.0's).
set_upcasters(RefundRequest, "Requested", _requested)
