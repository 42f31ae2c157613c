"""Payout: the shapes earlier builds stored, and how each is read today."""

from __future__ import annotations

from typing import Any

from services.payout.callbacks import RefusedCallback
from services.payout.domain import Payout
from services.payout.reconcile import ReconciliationReport
from shared.upcasting import set_upcasters


def _requested(state: dict[str, Any]) -> None:
    """058f5d7 stored no `payment_currency` (8f15be3): the route was billed in the order's."""
    state.setdefault("payment_currency", None)


def _succeeded(state: dict[str, Any]) -> None:
    """058f5d7 stored no `via`, `actor` (c1bba71), `settlement` or `fx` (8f15be3)."""
    state.setdefault("via", "gateway")  # the gateway was the only route
    state.setdefault("actor", None)  # confirmed by the gateway, not by a person
    state.setdefault("settlement", None)  # settled in the amount's currency: no conversion
    state.setdefault("fx", None)


def _failed(state: dict[str, Any]) -> None:
    """058f5d7 stored no `provider_final` (c1bba71): no provider closed a refund for good."""
    state.setdefault("provider_final", False)


def _failed_status(state: dict[str, Any]) -> None:
    """Builds before the abnormal refund (issue 18) stored no `provider_status`; a final
    failure's cause began with the provider's word (`ProviderReceipt.cause`)."""
    cause = str(state.get("cause") or "")
    status = None
    if state.get("provider_final"):
        for word in ("abnormal", "closed"):
            if cause.startswith(f"refund {word}:"):
                status = word
    state.setdefault("provider_status", status)


def _dispatched(state: dict[str, Any]) -> None:
    """0.3.0 and earlier stored no `provider`: a request went to the sandbox gateway, or
    was a store credit."""
    state.setdefault(
        "provider", "store_balance" if state["route"] == "store_balance" else "gateway"
    )


def _refused(state: dict[str, Any]) -> None:
    """0.3.0 and earlier stored no `source`: the sandbox gateway's route was the only one."""
    state.setdefault("source", "gateway")


def _reconciled(state: dict[str, Any]) -> None:
    """0.3.0 and earlier stored no `provider` or `tenant`: every report was the gateway's."""
    state.setdefault("provider", "gateway")
    state.setdefault("tenant", None)


# Stored as version 2 from now on. Every event stored so far has no version (1), whether
# a development build or 0.1.0 wrote it: each upcaster recognises the older shape by its
# keys and leaves 0.1.0's as it is (tests/e2e/test_frozen_stores.py loads 0.1.0's).
set_upcasters(Payout, "Requested", _requested)
set_upcasters(Payout, "Succeeded", _succeeded)
set_upcasters(Payout, "Failed", _failed, _failed_status)
set_upcasters(Payout, "Dispatched", _dispatched)
set_upcasters(RefusedCallback, "Refused", _refused)
set_upcasters(ReconciliationReport, "Recorded", _reconciled)
