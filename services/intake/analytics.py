"""Refund analytics for operations and product: rates, distributions, stage durations, SLA.

`RefundFacts` is a read model with one row of analysable facts per refund, kept from
intake's own log like the refund list (and rebuilt from it at will); `analyse()` reads the
rows one query selects and aggregates them in memory, which answers a few thousand refunds
in milliseconds. Money is summed per currency in integer minor units, never converted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.intake.domain import OPEN, RefundRequest
from services.intake.index import created_between
from shared.readmodel import ReadModel, sortable

MIXED = "mixed"  # a refund of items from several categories
UNCATEGORIZED = "uncategorized"
# Each stage a refund goes through, from one column of its facts to another.
STAGE_ENDS = {
    "submitted_to_decision": ("created_at", "first_decided_at"),
    "decision_to_paid": ("decided_at", "paid_at"),
    "submitted_to_paid": ("created_at", "paid_at"),
}
STAGES = tuple(STAGE_ENDS)


def outcome_of(refund: RefundRequest) -> str:
    """Where the refund ended up: open, approved, rejected, withdrawn, paying, paid,
    payout_failed or compensated (closed with a coupon instead of cash)."""
    if refund.receipt is not None:
        return "paid"  # closed by the customer confirming the money arrived
    if refund.status == "closed":
        return "compensated"
    if refund.status in OPEN:
        return "open"
    return str(refund.status)


def category_of(refund: RefundRequest) -> str:
    """The order-line category of the refunded items; `mixed` when they span several."""
    skus = {item["sku"] for item in refund.items}
    found = {
        str(line["category"])
        for line in refund.order.get("items", [])
        if line.get("sku") in skus and line.get("category")
    }
    if not found:
        return UNCATEGORIZED
    return found.pop() if len(found) == 1 else MIXED


def _decisions(refund: RefundRequest) -> list[tuple[datetime, str]]:
    """(when, by whom) of every decision review sent: approvals, rejections, a coupon."""
    made = [(d["decided_at"], str(d["decided_by"])) for d in refund.decisions]
    if refund.compensation is not None:
        made.append((refund.compensation["at"], str(refund.compensation["by"])))
    return sorted(made, key=lambda decision: decision[0])


def _current_decision(refund: RefundRequest) -> tuple[datetime, str] | None:
    if refund.decision is not None:
        return refund.decision["decided_at"], str(refund.decision["decided_by"])
    if refund.compensation is not None:
        return refund.compensation["at"], str(refund.compensation["by"])
    return None  # undecided, or reopened by an appeal


def _review_ended(refund: RefundRequest, decisions: list[tuple[datetime, str]]) -> datetime | None:
    """When the latest manual review ended: the first decision (or withdrawal) after it opened."""
    opened = [entry["at"] for entry in refund.timeline if entry["step"] == "in_review"]
    if not opened:
        return None
    ends = [at for at, _ in decisions if at >= opened[-1]]
    if refund.withdrawal is not None and refund.withdrawal["at"] >= opened[-1]:
        ends.append(refund.withdrawal["at"])
    return min(ends) if ends else None


def _when(at: datetime | None) -> str | None:
    return sortable(at) if at is not None else None


class RefundFacts(ReadModel):
    """One row of analysable facts per refund; times as sortable UTC text."""

    name = "refund_facts"
    columns = (
        "refund_id",
        "tenant",
        "created_at",
        "order_id",
        "reason",
        "channel",
        "category",
        "currency",
        "requested",
        "outcome",
        "approved",
        "approved_currency",
        "paid",
        "paid_currency",
        "first_decided_at",
        "decided_at",
        "decided_by",
        "paid_at",
        "review_deadline",
        "review_ended_at",
        "sla_breached_at",
        "version",
    )
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
        "order_id TEXT NOT NULL, reason TEXT NOT NULL, channel TEXT NOT NULL, "
        "category TEXT NOT NULL, currency TEXT NOT NULL, requested BIGINT NOT NULL, "
        "outcome TEXT NOT NULL, approved BIGINT, approved_currency TEXT, paid BIGINT, "
        "paid_currency TEXT, first_decided_at TEXT, decided_at TEXT, decided_by TEXT, "
        "paid_at TEXT, review_deadline TEXT, review_ended_at TEXT, sla_breached_at TEXT, "
        "version BIGINT NOT NULL"
    )
    changing = columns[9:]  # from `outcome` on; what a refund was asked for never changes
    time_column = "created_at"
    topic_marker = ":RefundRequest."

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        refund: RefundRequest = aggregate
        decisions = _decisions(refund)
        current = _current_decision(refund)
        approval = refund.decision if (refund.decision or {}).get("outcome") == "approved" else None
        payout = refund.payout if (refund.payout or {}).get("status") == "paid" else None
        return (
            str(refund.id),
            refund.tenant,
            sortable(refund.created_on),
            refund.order_id,
            refund.reason,
            refund.channel,
            category_of(refund),
            refund.amount.currency,
            refund.amount.amount,
            outcome_of(refund),
            approval["amount"].amount if approval else None,
            approval["amount"].currency if approval else None,
            payout["amount"].amount if payout else None,
            payout["amount"].currency if payout else None,
            _when(decisions[0][0] if decisions else None),
            _when(current[0] if current else None),
            current[1] if current else None,
            _when(payout["paid_at"] if payout else None),
            _when((refund.review or {}).get("deadline")),
            _when(_review_ended(refund, decisions)),
            _when(refund.sla_breached_at),
            refund.version,
        )

    def select(self, query: AnalyticsQuery) -> list[dict[str, Any]]:
        """The rows of the refunds `query` covers, caught up to the end of the log."""
        where, params = created_between(self, query.created_after, query.created_before)
        found, _ = self.fetch({"tenant": query.tenant}, where=where, params=params)
        return [dict(zip(self.columns, row, strict=True)) for row in found]


@dataclass(frozen=True)
class AnalyticsQuery:
    """Refunds created in (created_after, created_before), of one tenant or all."""

    tenant: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    orders_placed: int | None = None  # the platform's own order count, for the refund rate


@dataclass
class Group:
    count: int = 0
    requested: Counter[str] = field(default_factory=Counter)  # currency → minor units

    def add(self, currency: str, amount: int) -> None:
        self.count += 1
        self.requested[currency] += amount


@dataclass(frozen=True)
class Durations:
    count: int
    p50: float | None  # seconds
    p90: float | None


@dataclass(frozen=True)
class SlaBreaches:
    with_deadline: int  # refunds a person reviewed against a deadline
    breached: int  # review's clock ran out on them
    open_overdue: int  # of those breached: still undecided now


@dataclass(frozen=True)
class Deciders:
    decided: int
    automatic: int  # by the policy alone (`decided_by` starts with `system:`)
    staff: int

    @property
    def automatic_share(self) -> float | None:
        return self.automatic / self.decided if self.decided else None


@dataclass
class Report:
    refunds: int
    orders: int  # distinct orders with at least one of these refunds
    refund_rate: float | None
    requested: Counter[str]
    approved: Counter[str]
    paid: Counter[str]
    by_reason: dict[str, Group]
    by_category: dict[str, Group]
    by_channel: dict[str, Group]
    by_outcome: dict[str, Group]
    stages: dict[str, Durations]
    sla: SlaBreaches
    deciders: Deciders

    @property
    def refunds_per_order(self) -> float | None:
        return self.refunds / self.orders if self.orders else None


def analyse(facts: RefundFacts, query: AnalyticsQuery) -> Report:
    return summarise(facts.select(query), query)


def summarise(rows: Sequence[dict[str, Any]], query: AnalyticsQuery) -> Report:
    orders = len({(row["tenant"], row["order_id"]) for row in rows})
    return Report(
        refunds=len(rows),
        orders=orders,
        refund_rate=orders / query.orders_placed if query.orders_placed else None,
        requested=_sum(rows, "requested", "currency"),
        approved=_sum(rows, "approved", "approved_currency"),
        paid=_sum(rows, "paid", "paid_currency"),
        by_reason=_groups(rows, "reason"),
        by_category=_groups(rows, "category"),
        by_channel=_groups(rows, "channel"),
        by_outcome=_groups(rows, "outcome"),
        stages={stage: durations_between(rows, *STAGE_ENDS[stage]) for stage in STAGES},
        sla=_sla(rows),
        deciders=_deciders(rows),
    )


def _sum(rows: Iterable[dict[str, Any]], amount: str, currency: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for row in rows:
        if row[amount] is not None:
            total[row[currency]] += int(row[amount])
    return total


def _groups(rows: Iterable[dict[str, Any]], key: str) -> dict[str, Group]:
    groups: defaultdict[str, Group] = defaultdict(Group)
    for row in rows:
        groups[row[key]].add(row["currency"], int(row["requested"]))
    return dict(sorted(groups.items()))


def durations_between(rows: Iterable[dict[str, Any]], start: str, end: str) -> Durations:
    """From the time in column `start` to the one in `end`, over the rows that have both."""
    seconds = sorted(
        max((_parse(row[end]) - _parse(row[start])).total_seconds(), 0.0)
        for row in rows
        if row[start] is not None and row[end] is not None
    )
    return Durations(len(seconds), percentile(seconds, 50), percentile(seconds, 90))


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def _sla(rows: Iterable[dict[str, Any]]) -> SlaBreaches:
    """Breaches as review's SLA clock called them (`review.sla_breached.v1`): its clock counts
    business days and pauses while the customer is asked for evidence, which intake cannot."""
    reviewed = [row for row in rows if row["review_deadline"] is not None]
    late = [row for row in reviewed if row["sla_breached_at"] is not None]
    still_open = [row for row in late if row["review_ended_at"] is None]
    return SlaBreaches(len(reviewed), len(late), len(still_open))


def _deciders(rows: Iterable[dict[str, Any]]) -> Deciders:
    by = [str(row["decided_by"]) for row in rows if row["decided_by"] is not None]
    automatic = sum(1 for who in by if who.startswith("system:"))
    return Deciders(len(by), automatic, len(by) - automatic)


def _parse(text: str) -> datetime:
    """shared.readmodel.sortable() text back to a time (fromisoformat: 50x strptime's speed)."""
    return datetime.fromisoformat(text)
