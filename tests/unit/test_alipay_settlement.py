"""Alipay's trade bill, as the emulator renders it, read into settlement lines; every kind
of malformed file refused with MalformedReport naming the line, never another exception."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, timedelta, timezone

import pytest

from sandbox.alipay.bill import render_detail, render_zip
from sandbox.alipay.store import Store
from services.payout.providers.alipay import parse
from services.payout.providers.base import MalformedReport, SettlementLine

BEIJING = timezone(timedelta(hours=8))
DAY = date(2026, 1, 6)
AT = datetime(2026, 1, 6, 10, 30, tzinfo=BEIJING).timestamp()
SELLER = "2088000000000001"


def filled_store() -> Store:
    store = Store(None)
    store.open()
    trade = store.create_trade(total=100_000, out_trade_no="order-1", at=AT - 60)
    other = store.create_trade(total=5_000, trade_no="2026010622000000000000000042", at=AT - 30)
    store.add_refund(trade["trade_no"], "po_" + "1" * 32, 1234, at=AT, paid_at=AT, notify_url=None)
    store.add_refund(
        trade["trade_no"], "po_" + "1" * 32 + "-2", 1, at=AT, paid_at=AT + 5, notify_url=None
    )
    store.add_refund(other["trade_no"], "退款-3", 5_000, at=AT, paid_at=AT + 9, notify_url=None)
    # Paid the next Beijing day: not in this day's bill.
    store.add_refund(trade["trade_no"], "late", 7, at=AT, paid_at=AT + 86400, notify_url=None)
    return store


def detail() -> bytes:
    return render_detail(filled_store(), SELLER, DAY, now=AT + 86400 * 2)


def test_the_emulators_zip_parses_to_its_refunds_in_exact_fen() -> None:
    lines = parse(render_zip(filled_store(), SELLER, DAY, now=AT + 86400 * 2))
    assert [(line.merchant_refund_no, line.amount) for line in lines] == [
        ("po_" + "1" * 32, 1234),
        ("po_" + "1" * 32 + "-2", 1),
        ("退款-3", 5_000),
    ]
    first = lines[0]
    assert first == SettlementLine(
        merchant_refund_no="po_" + "1" * 32,
        provider_reference=first.provider_reference,
        amount=1234,
        currency="CNY",
        method="alipay",
        status="success",
        completed_at="2026-01-06T10:30:00+08:00",
    )
    assert len(first.provider_reference) == 28 and first.provider_reference.isdigit()
    assert lines[2].provider_reference == "2026010622000000000000000042"


def test_the_bare_csv_parses_like_the_zip() -> None:
    store = filled_store()
    later = AT + 86400 * 2
    assert parse(render_detail(store, SELLER, DAY, later)) == parse(
        render_zip(store, SELLER, DAY, later)
    )


def test_a_day_without_refunds_gives_no_lines() -> None:
    store = Store(None)
    store.open()
    assert parse(render_zip(store, SELLER, DAY)) == []


def lines_of(data: bytes) -> list[str]:
    return data.decode("gbk").split("\n")


def from_lines(lines: list[str]) -> bytes:
    return "\n".join(lines).encode("gbk")


def header_index(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("支付宝交易号"))


def refused(data: bytes) -> str:
    with pytest.raises(MalformedReport) as caught:
        parse(data)
    return str(caught.value)


def test_bare_cr_inside_a_line_names_it() -> None:
    lines = lines_of(detail())
    at = header_index(lines) + 2
    lines[at] = lines[at].replace("sandbox order", "sandbox\rorder")
    assert refused(from_lines(lines)) == f"line {at + 1}: bare CR inside a line"


def test_crlf_line_ends_are_fine() -> None:
    data = detail()
    assert parse(data.replace(b"\n", b"\r\n")) == parse(data)


def test_utf8_instead_of_gbk_is_refused() -> None:
    message = refused(detail().decode("gbk").encode("utf-8"))
    assert message.startswith("line ") and ("GBK" in message or "header" in message)
    assert refused(b"\xef\xbb\xbf" + detail().decode("gbk").encode("utf-8")).startswith("line 1:")


def test_truncated_file_is_refused() -> None:
    data = detail()
    cut = data[: data.index("业务明细列表结束".encode("gbk")) - 10]
    assert "truncated" in refused(cut) or "fields" in refused(cut)
    assert refused(cut).startswith("line ")


def test_reordered_columns_are_refused() -> None:
    lines = lines_of(detail())
    at = header_index(lines)
    names = lines[at].split(",")
    names[0], names[1] = names[1], names[0]
    lines[at] = ",".join(names)
    assert refused(from_lines(lines)) == f"line {at + 1}: header columns reordered"


def test_missing_column_is_refused_naming_it() -> None:
    lines = lines_of(detail())
    at = header_index(lines)
    lines[at] = lines[at].replace(",退款批次号/请求号", "")
    assert refused(from_lines(lines)) == f"line {at + 1}: header lacks 退款批次号/请求号"


def test_row_with_a_field_too_few_is_refused() -> None:
    lines = lines_of(detail())
    at = header_index(lines) + 3
    lines[at] = lines[at].rsplit(",", 1)[0]
    assert refused(from_lines(lines)) == f"line {at + 1}: 24 fields, expected 25"


def test_bad_amount_is_refused_naming_the_line() -> None:
    lines = lines_of(detail())
    at = next(i for i, line in enumerate(lines) if ",退款," in line)
    lines[at] = lines[at].replace("-12.34", "-12.345")
    assert refused(from_lines(lines)).startswith(f"line {at + 1}: 订单金额（元）")


def test_the_sandbox_gateways_settlement_is_refused() -> None:
    data = (
        b"merchant_refund_no,provider_reference,amount,currency,method,status,completed_at\n"
        b"RF-1,gw_1,1250,CNY,wechat_pay,success,2025-01-06T09:30:00.123456Z\n"
    )
    assert refused(data) == "line 1: the sandbox gateway's settlement, not Alipay's"


def test_unbalanced_quote_is_a_malformed_report_not_a_csv_error() -> None:
    lines = lines_of(detail())
    at = header_index(lines) + 1
    lines[at] = '"' + lines[at]
    assert refused(from_lines(lines)).startswith(f"line {at + 1}:")


@pytest.mark.parametrize(
    "data", [b"PK\x03\x04broken", b"", b"# only a comment\n"], ids=["zip", "empty", "comment"]
)
def test_other_garbage_is_a_malformed_report(data: bytes) -> None:
    assert refused(data).startswith("line ")


def test_zip_without_the_detail_file_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other.csv", b"x")
    assert refused(buffer.getvalue()) == "line 0: the zip holds no *业务明细.csv file"
