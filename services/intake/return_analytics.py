"""Return analytics: how often review wants the goods back, how long they take to come back,
what the warehouse finds and what it deducts.

`ReturnFacts` is a read model of its own (one row per refund, kept from intake's log like
`RefundFacts`, and rebuilt from it at will) rather than more columns of `refund_facts`: a
table that stores of earlier releases already hold keeps its shape, and this one fills
from the start of the log the first time it runs. Money is summed per currency in integer
minor units, never converted.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.intake.analytics import AnalyticsQuery, Durations, durations_between
from services.intake.domain import RefundRequest
from services.intake.index import created_between
from shared.readmodel import ReadModel, sortable

NOT_RECEIVED = "not_received"  # an inspected line of which nothing arrived (no condition)
# Each stage of a return, from one column of its facts to another.
RETURN_STAGE_ENDS = {
    "requested_to_shipped": ("requested_at", "shipped_at"),
    "delivered_to_received": ("delivered_at", "received_at"),
}


def _when(at: datetime | None) -> str | None:
    return sortable(at) if at is not None else None


def inspected(refund: RefundRequest) -> list[dict[str, Any]]:
    """Each inspected line's condition, rule and deduction (the JSON the row keeps)."""
    received = refund.goods_return.get("received") or {}
    return [
        {
            "condition": line["condition"] or NOT_RECEIVED,
            "rule": line["rule"],
            "deducted": line["deducted"].amount,
            "currency": line["deducted"].currency,
        }
        for line in received.get("items", [])
    ]


class ReturnFacts(ReadModel):
    """One row per refund: whether it needed a return or an approval, and the return's times."""

    name = "return_facts"
    columns = (
        "refund_id",
        "tenant",
        "created_at",
        "approved",
        "return_required",
        "requested_at",
        "shipped_at",
        "delivered_at",
        "received_at",
        "outcome",
        "inspection",
        "version",
    )
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
        "approved BIGINT NOT NULL, return_required BIGINT NOT NULL, requested_at TEXT, "
        "shipped_at TEXT, delivered_at TEXT, received_at TEXT, outcome TEXT, "
        "inspection TEXT NOT NULL, version BIGINT NOT NULL"
    )
    changing = columns[3:]  # from `approved` on; who and when it was asked never changes
    time_column = "created_at"
    topic_marker = ":RefundRequest."

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        refund: RefundRequest = aggregate
        steps = refund.goods_return
        approved = any(d["outcome"] == "approved" for d in refund.decisions)
        received = steps.get("received") or {}
        return (
            str(refund.id),
            refund.tenant,
            sortable(refund.created_on),
            int(approved),
            int("requested" in steps),
            _when((steps.get("requested") or {}).get("at")),
            _when((steps.get("shipped") or {}).get("at")),
            _when((steps.get("delivered") or {}).get("at")),
            _when(received.get("at")),
            received.get("outcome"),
            json.dumps(inspected(refund), sort_keys=True),
            refund.version,
        )

    def select(self, query: AnalyticsQuery) -> list[dict[str, Any]]:
        """The rows of the refunds `query` covers, caught up to the end of the log."""
        where, params = created_between(self, query.created_after, query.created_before)
        found, _ = self.fetch({"tenant": query.tenant}, where=where, params=params)
        return [dict(zip(self.columns, row, strict=True)) for row in found]


@dataclass(frozen=True)
class ReturnReport:
    required: int  # refunds review wanted the goods back for
    approved_or_returned: int  # refunds approved, or sent back for a return, or both
    stages: dict[str, Durations]
    outcomes: Counter[str]  # the inspections' outcomes: refund, exchange, reviewer
    conditions: Counter[str]  # inspected lines by the condition found
    deductions: dict[str, Counter[str]]  # rule → currency → minor units deducted

    @property
    def rate(self) -> float | None:
        """Of the refunds that were granted in some way, the share that needed the goods back."""
        return self.required / self.approved_or_returned if self.approved_or_returned else None


def analyse_returns(facts: ReturnFacts, query: AnalyticsQuery) -> ReturnReport:
    return summarise_returns(facts.select(query))


def summarise_returns(rows: Sequence[dict[str, Any]]) -> ReturnReport:
    returns = [row for row in rows if row["return_required"]]
    lines = [line for row in returns for line in json.loads(row["inspection"])]
    deductions: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        if line["rule"] is not None and line["deducted"] > 0:
            deductions[line["rule"]][line["currency"]] += int(line["deducted"])
    return ReturnReport(
        required=len(returns),
        approved_or_returned=sum(1 for row in rows if row["approved"] or row["return_required"]),
        stages={
            stage: durations_between(returns, start, end)
            for stage, (start, end) in RETURN_STAGE_ENDS.items()
        },
        outcomes=Counter(str(row["outcome"]) for row in returns if row["outcome"] is not None),
        conditions=Counter(str(line["condition"]) for line in lines),
        deductions=dict(sorted(deductions.items())),
    )
