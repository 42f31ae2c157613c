"""Payout's stored event classes read their first shapes: a payout requested, dispatched,
succeeded or failed, a refused provider callback and a reconciliation, each loaded from
the shape its first build stored with the documented values."""

from __future__ import annotations

from services.payout.callbacks import RefusedCallback
from services.payout.domain import Payout
from services.payout.reconcile import ReconciliationReport
from shared.application import ServiceApplication
from tests.support.upcasting import (
    NOW,
    _payout,
    applications_fixture,  # noqa: F401 (a fixture, used by name)
    failed,
    first_shape,
    paid,
    reconciled,
    refused,
)

# -- each first shape loads with the documented values ---------------------------------------


def test_payout_requested_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        paid(),
        Payout.Requested,
        drop=("payment_currency",),
    )
    assert event.payment_currency is None and payout.payment_currency is None


def test_payout_succeeded_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        paid(),
        Payout.Succeeded,
        drop=("via", "actor", "settlement", "fx"),
    )
    assert (event.via, event.actor, event.settlement, event.fx) == ("gateway", None, None, None)
    assert payout.status == "paid" and payout.provider_reference == "gw_1"


def test_payout_failed_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        failed(),
        Payout.Failed,
        drop=("provider_final",),
    )
    assert event.provider_final is False and payout.last_failure_final is False
    assert payout.status == "failed"


def test_payout_dispatched_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 named no provider: a request went to the sandbox gateway, or was store credit."""
    event, payout = first_shape(
        applications["payout"], paid(), Payout.Dispatched, drop=("provider",)
    )
    assert event.provider == "gateway"
    assert payout.provider_of(payout.number, "card") == "gateway"
    credit = _payout()
    credit.method = "store_balance"  # as a switch to store balance leaves it
    credit.dispatch(NOW, "store_balance")
    event, loaded_credit = first_shape(
        applications["payout"], credit, Payout.Dispatched, drop=("provider",)
    )
    assert event.provider == "store_balance"
    assert loaded_credit.provider_of(loaded_credit.number, "store_balance") == "store_balance"


def test_refused_callback_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 had one callback route, the gateway's."""
    event, refused_there = first_shape(
        applications["payout"], refused(), RefusedCallback.Refused, drop=("source",)
    )
    assert event.source == "gateway" and refused_there.source == "gateway"
    assert refused_there.reason == "bad-signature"


def test_reconciliation_recorded_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 reconciled only the gateway's settlement file."""
    event, report = first_shape(
        applications["payout"],
        reconciled(),
        ReconciliationReport.Recorded,
        drop=("provider", "tenant"),
    )
    assert (event.provider, event.tenant) == ("gateway", None)
    assert (report.provider, report.tenant) == ("gateway", None)
    assert report.counts == {"matched": 1}
