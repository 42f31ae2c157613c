"""Refund analytics' pure parts: nearest-rank percentiles and the SLA judged against `now`."""

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


def test_an_undecided_case_breaches_only_once_its_deadline_has_passed() -> None:
    waiting = [row(review_deadline=sortable(T0 + timedelta(hours=1)))]
    before = summarise(waiting, AnalyticsQuery(), T0 + timedelta(minutes=59))
    after = summarise(waiting, AnalyticsQuery(), T0 + timedelta(minutes=61))
    assert (before.sla.with_deadline, before.sla.breached, before.sla.open_overdue) == (1, 0, 0)
    assert (after.sla.with_deadline, after.sla.breached, after.sla.open_overdue) == (1, 1, 1)


def test_a_case_decided_in_time_never_breaches_later() -> None:
    decided = [
        row(
            review_deadline=sortable(T0 + timedelta(hours=1)),
            review_ended_at=sortable(T0 + timedelta(minutes=30)),
        )
    ]
    much_later = summarise(decided, AnalyticsQuery(), T0 + timedelta(days=30))
    assert (much_later.sla.breached, much_later.sla.open_overdue) == (0, 0)


def test_money_is_summed_per_currency_never_mixed() -> None:
    rows = [row(requested=100), row(requested=250, currency="USD"), row(requested=5)]
    report = summarise(rows, AnalyticsQuery(), T0)
    assert dict(report.requested) == {"CNY": 105, "USD": 250}
    assert report.by_reason["damaged"].count == 3
    assert dict(report.by_reason["damaged"].requested) == {"CNY": 105, "USD": 250}
