"""Stripe's itemized balance change report ("Balance change from activity", report type
`balance_change_from_activity.itemized.3`, docs.stripe.com/reports/balance): a UTF-8 CSV,
one line per balance transaction, amounts in major units with the currency's decimals.

We ask Stripe for these columns, in this order (the report's own column names; the
metadata column is how Stripe puts our number in a report). Refunds are the lines of
reporting category `refund` (money sent back: `gross` negative) and `refund_failure` (a
refund that failed after all, the money returned: `gross` positive); the rest (charges,
fees, payouts) is not ours to reconcile and is skipped.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal, InvalidOperation

from services.payout.providers.base import MalformedReport, SettlementLine
from services.payout.providers.stripe.objects import METHOD
from shared.money import Money

REPORT_TYPE = "balance_change_from_activity.itemized.3"
COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "charge_id",
    "payment_intent_id",
    "payment_method_type",
    "refund_metadata[merchant_refund_no]",
)
REFUND_CATEGORIES = {"refund": "success", "refund_failure": "closed"}
CREATED_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, as Stripe's reports write times


def parse(data: bytes) -> list[SettlementLine]:
    """The refunds a report lists; MalformedReport("line N: …") when it is not one."""
    text = _decoded(data)
    _no_bare_cr(text)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    lines: list[SettlementLine] = []
    try:
        header = next(reader, None)
        if header is None:
            raise MalformedReport("line 1: empty file, expected the report's header")
        if tuple(header) != COLUMNS:
            raise MalformedReport(
                f"line 1: not Stripe's itemized balance change report with our columns "
                f"(got {','.join(header)[:120]!r})"
            )
        for row in reader:
            number = reader.line_num
            if not row:
                continue
            line = _line(number, row)
            if line is not None:
                lines.append(line)
    except csv.Error as error:
        raise MalformedReport(f"line {max(reader.line_num, 1)}: {error}") from None
    return lines


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a BOM, as spreadsheet tools add, is tolerated
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MalformedReport(f"line {line}: not UTF-8 ({error.reason})") from None


def _no_bare_cr(text: str) -> None:
    # Lines end in LF or CRLF; a CR elsewhere (even quoted) is a damaged or foreign file.
    for number, line in enumerate(text.split("\n"), start=1):
        if "\r" in line.removesuffix("\r"):
            raise MalformedReport(f"line {number}: carriage return inside the line")


def _line(number: int, row: list[str]) -> SettlementLine | None:
    if len(row) != len(COLUMNS):
        raise MalformedReport(f"line {number}: {len(row)} columns, expected {len(COLUMNS)}")
    field = dict(zip(COLUMNS, row, strict=True))
    status = REFUND_CATEGORIES.get(field["reporting_category"])
    if status is None:
        return None
    if not field["source_id"].startswith("re_"):
        raise MalformedReport(f"line {number}: source_id of a refund must be re_…")
    merchant_refund_no = field["refund_metadata[merchant_refund_no]"]
    if not merchant_refund_no:
        raise MalformedReport(f"line {number}: refund without metadata merchant_refund_no")
    currency = field["currency"].upper()
    try:
        gross = Decimal(field["gross"])
        if not gross.is_finite():
            raise InvalidOperation
        money = Money.from_major(abs(gross), currency)
    except (InvalidOperation, ValueError) as error:
        raise MalformedReport(f"line {number}: gross {field['gross']!r}: {error}") from None
    expected_sign = -1 if status == "success" else 1
    if gross.is_zero() or (gross > 0) != (expected_sign > 0):
        raise MalformedReport(
            f"line {number}: gross {field['gross']} has the wrong sign for "
            f"{field['reporting_category']}"
        )
    try:
        created = datetime.strptime(field["created_utc"], CREATED_FORMAT)
    except ValueError:
        raise MalformedReport(
            f"line {number}: created_utc {field['created_utc']!r} is not YYYY-MM-DD HH:MM:SS"
        ) from None
    return SettlementLine(
        merchant_refund_no=merchant_refund_no,
        provider_reference=field["source_id"],
        amount=money.amount,
        currency=money.currency,
        method=METHOD,
        status=status,
        completed_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
