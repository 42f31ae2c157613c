"""Reconciliation of a provider settlement report containing every kind of mismatch."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.payout.reconcile import (
    MalformedReport,
    OurPayout,
    parse_settlement,
    reconcile,
    report_of,
)

DAY = date(2026, 11, 20)
HEADER = "merchant_refund_no,provider_reference,amount,currency,method,status,completed_at\n"
REPORT = HEADER + (
    "po_matched,gw_1,11900,CNY,alipay,success,2026-11-20T10:00:00Z\n"
    "po_unknown,gw_2,500,CNY,card,success,2026-11-20T10:01:00Z\n"
    "po_amount,gw_3,9999,CNY,card,success,2026-11-20T10:02:00Z\n"
    "po_currency,gw_4,1000,USD,card,success,2026-11-20T10:03:00Z\n"
    "po_status,gw_5,2000,CNY,wechat_pay,closed,2026-11-20T10:04:00Z\n"
    "po_failed,gw_6,3000,CNY,card,abnormal,2026-11-20T10:05:00Z\n"
)
OURS = [
    OurPayout("po_matched", 11900, "CNY", "paid", DAY),
    OurPayout("po_amount", 10000, "CNY", "paid", DAY),
    OurPayout("po_currency", 1000, "CNY", "paid", DAY),
    OurPayout("po_status", 2000, "CNY", "paid", DAY),
    OurPayout("po_failed", 3000, "CNY", "failed", DAY),
    OurPayout("po_absent", 4000, "CNY", "paid", DAY),
    OurPayout("po_other_day", 4000, "CNY", "paid", date(2026, 11, 19)),
    OurPayout("po_pending", 4000, "CNY", "pending", None),
]


def test_every_kind_of_mismatch_is_named_per_line() -> None:
    findings = reconcile(parse_settlement(REPORT), OURS, DAY)
    assert [(f.kind, f.merchant_refund_no) for f in findings] == [
        ("matched", "po_matched"),
        ("missing_on_our_side", "po_unknown"),
        ("amount_differs", "po_amount"),
        ("amount_differs", "po_currency"),
        ("status_differs", "po_status"),
        ("matched", "po_failed"),
        ("missing_at_provider", "po_absent"),
    ]
    by_number = {f.merchant_refund_no: f.detail for f in findings}
    assert by_number["po_amount"] == "provider 9999 CNY, ours 10000 CNY"
    assert by_number["po_status"] == "provider closed, ours paid"


def test_a_report_is_recorded_with_its_counts_and_digest() -> None:
    at = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    report = report_of(REPORT, OURS, DAY, actor="zhao", at=at)
    assert report.counts == {
        "matched": 2,
        "missing_on_our_side": 1,
        "amount_differs": 2,
        "status_differs": 1,
        "missing_at_provider": 1,
    }
    again = report_of(REPORT, OURS, DAY, actor="zhao", at=at)
    assert again.id == report.id  # the same file on the same day names the same report
    assert [type(e).__name__ for e in report.collect_events()] == ["Recorded"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1"),
        ("a,b\n", "line 1"),
        (HEADER + "po_1,gw,12,CNY\n", "line 2: 4 fields"),
        (HEADER + "po_1,gw,twelve,CNY,card,success,2026-11-20T10:00:00Z\n", "line 2: amount"),
    ],
)
def test_a_malformed_report_names_the_line(text: str, message: str) -> None:
    with pytest.raises(MalformedReport, match=message):
        parse_settlement(text)
