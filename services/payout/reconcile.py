"""Reconciliation: the provider's settlement report for a day, line by line, against our payouts.

"The money went back" is not the end of a case: every line of the provider's
report must match one of our payouts, and every payout we consider done that day
must appear in the report. Each line gets one finding; a report is kept as an
event, so what finance saw on a day can be shown later exactly as it was.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from eventsourcing.domain import Aggregate

from services.payout.domain import GATEWAY_METHODS, SETTLED, Payout, PayoutStatus
from services.payout.providers.base import MalformedReport as MalformedReport
from services.payout.providers.base import SettlementLine
from services.payout.providers.gateway import SETTLEMENT_COLUMNS
from shared.ids import derived_id
from shared.quick_copy import QuickCopy

FindingKind = Literal[
    "matched",
    "missing_on_our_side",
    "missing_at_provider",
    "amount_differs",
    "status_differs",
]
# The provider's final statuses and what we call the same outcome.
OURS_FOR: dict[str, PayoutStatus] = {
    "success": "paid",
    "closed": "failed",
    "abnormal": "failed",
    "processing": "pending",
}
# The outcomes the provider settles and lists in its report of the day they were recorded.
PROVIDER_SETTLED: frozenset[PayoutStatus] = frozenset({"paid", "failed"})


@dataclass(frozen=True)
class OurPayout:
    """What payout recorded: the merchant refund number, money and outcome."""

    merchant_refund_no: str
    amount: int
    currency: str
    status: PayoutStatus  # paid / failed / pending (processing too) / cancelled
    settled_on: date | None  # the day the outcome was recorded
    provider: str = "gateway"  # whose report lists it: where the number was sent
    tenant: str = ""

    def listed_by(self, provider: str, tenant: str | None) -> bool:
        """Whether `provider`'s report (of `tenant`'s account, for a tenant's own) lists it."""
        return self.provider == provider and (tenant is None or self.tenant == tenant)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    merchant_refund_no: str
    detail: str


def parse_settlement(text: str) -> list[SettlementLine]:
    """The sandbox gateway's settlement CSV (sandbox/GATEWAY.md)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as error:  # a bare CR inside a line, a NUL...: name where it stopped
        raise MalformedReport(f"line {reader.line_num}: {error}") from None
    if not rows or tuple(c.strip() for c in rows[0]) != SETTLEMENT_COLUMNS:
        raise MalformedReport(f"line 1: expected the header {','.join(SETTLEMENT_COLUMNS)}")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(SETTLEMENT_COLUMNS):
            raise MalformedReport(
                f"line {number}: {len(row)} fields, expected {len(SETTLEMENT_COLUMNS)}"
            )
        fields = dict(zip(SETTLEMENT_COLUMNS, (c.strip() for c in row), strict=True))
        try:
            amount = int(fields["amount"])
        except ValueError:
            raise MalformedReport(f"line {number}: amount {fields['amount']!r}") from None
        lines.append(SettlementLine(**{**fields, "amount": amount}))  # type: ignore[arg-type]
    return lines


def parse_gateway_file(data: bytes) -> list[SettlementLine]:
    """The gateway's file as uploaded: UTF-8 text, else a 422 naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MalformedReport(f"line {line}: not UTF-8 (byte {error.start})") from None
    return parse_settlement(text)


def reconcile(lines: list[SettlementLine], ours: list[OurPayout], day: date) -> list[Finding]:
    """One finding per provider line, plus one per payout of `day` the provider does not list."""
    by_number = {p.merchant_refund_no: p for p in ours}
    findings = []
    for line in lines:
        mine = by_number.get(line.merchant_refund_no)
        if mine is None:
            findings.append(
                Finding(
                    "missing_on_our_side",
                    line.merchant_refund_no,
                    f"the provider lists {line.amount} {line.currency} ({line.status}); "
                    "we have no such payout",
                )
            )
        elif (line.amount, line.currency) != (mine.amount, mine.currency):
            findings.append(
                Finding(
                    "amount_differs",
                    line.merchant_refund_no,
                    f"provider {line.amount} {line.currency}, ours {mine.amount} {mine.currency}",
                )
            )
        elif OURS_FOR.get(line.status) != mine.status:
            findings.append(
                Finding(
                    "status_differs",
                    line.merchant_refund_no,
                    f"provider {line.status}, ours {mine.status}",
                )
            )
        else:
            findings.append(Finding("matched", line.merchant_refund_no, ""))
    listed = {line.merchant_refund_no for line in lines}
    for mine in ours:
        settled = mine.status in PROVIDER_SETTLED and mine.settled_on == day
        if settled and mine.merchant_refund_no not in listed:
            findings.append(
                Finding(
                    "missing_at_provider",
                    mine.merchant_refund_no,
                    f"we recorded {mine.status} {mine.amount} {mine.currency} on {day}; "
                    "the provider's report does not list it",
                )
            )
    return findings


def _day(at: Any) -> date | None:
    return at.astimezone(UTC).date() if isinstance(at, datetime) else None


def our_records(payout: Payout) -> list[OurPayout]:
    """The payout as the provider knows it: one record per gateway merchant refund number.

    The number the money moved under is `paid` on the day it moved; an earlier number of a
    later series is `failed` (the provider closed it or never completed it); the current
    number has the payout's own status (`processing` is still `pending`). Store balance and
    manual payments never reach the provider, so they are not listed under their own route.
    """
    result = payout.result or {}
    paid_number = result.get("merchant_refund_no") if payout.status == "paid" else None
    via = result.get("via")
    numbers = [number for number, route in payout.sent if route in GATEWAY_METHODS]
    route_of = {number: route for number, route in payout.sent if route in GATEWAY_METHODS}
    if payout.method in GATEWAY_METHODS and payout.number not in numbers:
        numbers.append(payout.number)  # not sent yet: pending or cancelled
        route_of[payout.number] = payout.method
    records: list[OurPayout] = []
    status: PayoutStatus
    for number in dict.fromkeys(numbers):
        gateway_paid = via == "gateway" and payout.method in GATEWAY_METHODS
        if payout.status == "paid" and gateway_paid and number == paid_number:
            status, settled = "paid", _day(result.get("paid_at"))
        elif number == payout.number and payout.method in GATEWAY_METHODS and via != "manual":
            status = "pending" if payout.status == "processing" else payout.status
            at = result.get("failed_at") or result.get("cancelled_at") or result.get("paid_at")
            settled = _day(at) if status in SETTLED else None
        else:
            status, settled = "failed", None
        route = route_of[number]
        sent = payout.amount_on(route)
        provider = payout.provider_of(number, route) or "gateway"  # unsent: not listed yet
        records.append(
            OurPayout(number, sent.amount, sent.currency, status, settled, provider, payout.tenant)
        )
    return records


def settled_day(payout: Payout) -> date | None:
    """The day the provider settled `payout` as reconciliation sees it: the day of its
    records `paid` or `failed` at the provider (None: none). Every such record takes its day
    from the payout's one outcome time, so a payout settles on one day at most."""
    days = {
        record.settled_on
        for record in our_records(payout)
        if record.status in PROVIDER_SETTLED and record.settled_on is not None
    }
    return min(days) if days else None


@dataclass
class ReconciliationReport(QuickCopy, Aggregate, created_event_name="Recorded"):
    """One reconciliation of one provider report: kept as it was, for later questions."""

    day: date
    digest: str
    findings: list[dict[str, Any]]
    counts: dict[str, int]
    actor: str
    at: datetime
    # Whose report it was (v2, 0.4.0): the provider, and the tenant for a tenant's own account.
    provider: str = "gateway"
    tenant: str | None = None

    @staticmethod
    def create_id(day: date, digest: str) -> uuid.UUID:
        return derived_id("reconciliation", day.isoformat(), digest)


def report_of(
    text: str, ours: list[OurPayout], day: date, *, actor: str, at: datetime
) -> ReconciliationReport:
    """Parse, reconcile and record a gateway file: the same file twice names the same report."""
    digest = settlement_digest(text.encode())
    return recorded(parse_settlement(text), digest, ours, day, actor=actor, at=at)


def settlement_digest(data: bytes, provider: str = "gateway", tenant: str | None = None) -> str:
    """What names a settlement file: the same file of the same account is one report."""
    scope = b"" if provider == "gateway" else f"{provider}/{tenant}\n".encode()
    return hashlib.sha256(scope + data).hexdigest()


def recorded(
    lines: list[SettlementLine],
    digest: str,
    ours: list[OurPayout],
    day: date,
    *,
    actor: str,
    at: datetime,
    provider: str = "gateway",
    tenant: str | None = None,
) -> ReconciliationReport:
    """The report of a parsed file against our records of it."""
    findings = reconcile(lines, ours, day)
    return ReconciliationReport(
        day=day,
        digest=digest,
        findings=[asdict(f) for f in findings],
        counts=dict(Counter(f.kind for f in findings)),
        actor=actor,
        at=at,
        provider=provider,
        tenant=tenant,
    )
