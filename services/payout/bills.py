"""Fetched bills: which of a provider's bills cover one of our settlement days, and which of
their lines belong to it.

Reconciliation's day is a UTC day: a payout settles on the UTC date of its outcome
(`reconcile.settled_day`). A provider whose bills are dated in another zone covers one UTC
day with two of its bills: Alipay's and WeChat Pay's are by Beijing date (UTC+8), so UTC day
D runs from Beijing D 08:00 to Beijing D+1 08:00 and needs the bills of D and D+1. Both are
fetched, and only the lines completed within UTC day D are reconciled; the rest belong to the
days before and after. Stripe's report runs are asked for the UTC interval itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from services.payout.providers.base import MalformedReport, SettlementLine
from services.payout.reconcile import settlement_digest


def bill_days(zone: tzinfo, day: date) -> list[date]:
    """The provider's bill dates (in `zone`) that together cover UTC day `day`."""
    start = datetime.combine(day, time(), UTC)
    last = start + timedelta(days=1, microseconds=-1)
    return sorted({start.astimezone(zone).date(), last.astimezone(zone).date()})


def bills_digest(bills: Sequence[bytes], provider: str, tenant: str | None) -> str:
    """What names the fetched bills: one bill is named as the same file uploaded is (so a
    fetch and an upload of one Stripe report are one report); several are named together,
    each length-prefixed so no two different sets share a name."""
    if len(bills) == 1:
        return settlement_digest(bills[0], provider, tenant)
    scope = hashlib.sha256(f"{provider}/{tenant}\n{len(bills)} bills\n".encode())
    for bill in bills:
        scope.update(f"{len(bill)}\n".encode())
        scope.update(bill)
    return scope.hexdigest()


def lines_of_day(lines: Sequence[SettlementLine], day: date) -> list[SettlementLine]:
    """The lines completed within UTC day `day` (their times carry their zone)."""
    kept = []
    for line in lines:
        try:
            at = datetime.fromisoformat(line.completed_at)
        except ValueError:
            raise MalformedReport(
                f"{line.merchant_refund_no}: completion time {line.completed_at!r} unreadable"
            ) from None
        if at.tzinfo is None:
            raise MalformedReport(f"{line.merchant_refund_no}: completion time without a zone")
        if at.astimezone(UTC).date() == day:
            kept.append(line)
    return kept
