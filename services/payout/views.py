"""How payout shows staff a payout (with its trail) and a reconciliation report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.payout.accounts import ProviderAccount
from services.payout.domain import Payout
from services.payout.index import report_public_id
from services.payout.providers.base import ProviderSpec
from services.payout.reconcile import ReconciliationReport
from services.payout.schemas import (
    HistoryEntry,
    PayoutEntry,
    PayoutView,
    ProviderAccountView,
    ProviderList,
    ProviderView,
    ReconciliationEntry,
    ReconciliationView,
)
from shared.ids import public_id
from shared.money import Money

# Event attributes that are bookkeeping, not facts staff need to read.
HIDDEN = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def plain(value: Any) -> Any:
    """Money as {amount, currency}, tuples as lists, inside any dicts and lists."""
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _entry_fields(payout: Payout) -> dict[str, Any]:
    return {
        "id": public_id("po", payout.id),
        "refund_id": payout.refund_id,
        "tenant": payout.tenant,
        "status": payout.status,
        "method": payout.method,
        "amount": plain(payout.amount),
        "merchant_refund_no": payout.merchant_refund_no,
        "created_at": payout.created_on,
        "updated_at": payout.modified_on,
    }


def payout_entry(payout: Payout) -> PayoutEntry:
    return PayoutEntry.model_validate(_entry_fields(payout))


def history_entry(stored: Any) -> HistoryEntry:
    data = {k: plain(v) for k, v in vars(stored).items() if k not in HIDDEN}
    at: datetime = stored.timestamp
    return HistoryEntry(
        type=type(stored).__name__, at=at, version=stored.originator_version, data=data
    )


def payout_view(payout: Payout, history: list[Any]) -> PayoutView:
    """The payout with its trail: the stored events up to the payout's version."""
    return PayoutView.model_validate(
        {
            **_entry_fields(payout),
            "approval_id": payout.approval_id,
            "original_method": payout.original_method,
            "payment_reference": payout.payment_reference,
            "payment_currency": payout.payment_currency,
            "settlement": plain(payout.settlement),
            "conversion": payout.conversion,
            "series": payout.series,
            "attempts": payout.attempts,
            "dispatches": [
                {
                    "merchant_refund_no": number,
                    "route": route,
                    "provider": payout.provider_of(number, route),
                }
                for number, route in payout.sent
            ],
            "provider_reference": payout.provider_reference,
            "consent_reference": payout.consent_reference,
            "outcome": plain(payout.result),
            "actions": plain(payout.actions),
            "abnormal_refund_allowed": payout.abnormal_refund_allowed,
            "history": [history_entry(e) for e in history[: payout.version]],
            "version": payout.version,
        }
    )


def _report_fields(report: ReconciliationReport) -> dict[str, Any]:
    return {
        "id": report_public_id(report.id),
        "day": report.day,
        "digest": report.digest,
        "actor": report.actor,
        "recorded_at": report.at,
        "counts": report.counts,
        "mismatches": sum(n for kind, n in report.counts.items() if kind != "matched"),
        "provider": report.provider,
        "tenant": report.tenant,
    }


def reconciliation_entry(report: ReconciliationReport) -> ReconciliationEntry:
    return ReconciliationEntry.model_validate(_report_fields(report))


def reconciliation_view(report: ReconciliationReport) -> ReconciliationView:
    return ReconciliationView.model_validate(
        {**_report_fields(report), "findings": report.findings}
    )


def provider_account_view(account: ProviderAccount) -> ProviderAccountView:
    return ProviderAccountView(
        tenant=account.tenant,
        provider=account.provider,
        methods=account.methods,
        active=account.active,
        summary=account.summary,
        configured_by=account.configured_by,
        configured_at=account.configured_at,
        removed_at=account.removed_at,
    )


def provider_list(specs: Iterable[ProviderSpec]) -> ProviderList:
    return ProviderList(
        data=[
            ProviderView(
                name=spec.name,
                methods=sorted(spec.methods),
                account_schema=spec.account.model_json_schema(),
            )
            for spec in sorted(specs, key=lambda spec: spec.name)
        ]
    )
