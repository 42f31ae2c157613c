"""Refund analytics' pure parts: nearest-rank percentiles, review's SLA breaches, money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.analytics import AnalyticsQuery, RefundFacts, percentile, summarise
from shared.readmodel import sortable

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 90, 7.0),
        ([1.0, 2.0], 50, 1.0),  # rank ceil(1.0) = 1
        ([1.0, 2.0], 90, 2.0),  # rank ceil(1.8) = 2
        ([float(v) for v in range(1, 11)], 90, 9.0),  # rank 9 of 10
        ([float(v) for v in range(1, 11)], 50, 5.0),
        ([float(v) for v in range(1, 12)], 90, 10.0),  # rank ceil(9.9) = 10
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def row(**facts: Any) -> dict[str, Any]:
    blank = dict.fromkeys(RefundFacts.columns)
    blank |= {
        "refund_id": "r",
        "tenant": "acme",
        "created_at": sortable(T0),
        "order_id": "O-1",
        "reason": "damaged",
        "channel": "app",
        "category": "apparel",
        "currency": "CNY",
        "requested": 100,
        "outcome": "open",
    }
    return blank | facts


def test_breaches_are_the_ones_reviews_clock_called() -> None:
    deadline = sortable(T0 + timedelta(hours=1))
    rows = [
        # Past its deadline by the wall clock, but review paused for evidence: no breach.
        row(review_deadline=deadline, review_ended_at=sortable(T0 + timedelta(hours=5))),
        row(review_deadline=deadline, sla_breached_at=sortable(T0 + timedelta(hours=1))),
        row(
            review_deadline=deadline,
            sla_breached_at=sortable(T0 + timedelta(hours=1)),
            review_ended_at=sortable(T0 + timedelta(hours=2)),
        ),
        row(),  # decided by the policy: no deadline at all
    ]
    sla = summarise(rows, AnalyticsQuery()).sla
    assert (sla.with_deadline, sla.breached, sla.open_overdue) == (3, 2, 1)


def test_money_is_summed_per_currency_never_mixed() -> None:
    rows = [row(requested=100), row(requested=250, currency="USD"), row(requested=5)]
    report = summarise(rows, AnalyticsQuery())
    assert dict(report.requested) == {"CNY": 105, "USD": 250}
    assert report.by_reason["damaged"].count == 3
    assert dict(report.by_reason["damaged"].requested) == {"CNY": 105, "USD": 250}
