"""WeChat Pay's refund bill (`GET /v3/bill/tradebill?bill_type=REFUND`, then its download_url).

The file is UTF-8 CSV: a header row, one row per refund with every field prefixed by a
backtick (so spreadsheets keep long numbers as text), then a summary block — its own
header row and one row of totals. Amounts are yuan with two decimals, converted exactly to
fen; times are Beijing time (UTC+8) without an offset.
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation

from services.payout.providers.base import MalformedReport, SettlementLine

COLUMNS = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "退款申请时间",
    "退款成功时间",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
SUMMARY_COLUMNS = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)
STATUSES = {
    "SUCCESS": "success",
    "PROCESSING": "processing",
    "CLOSED": "closed",
    "REFUNDCLOSE": "closed",
    "ABNORMAL": "abnormal",
    "CHANGE": "abnormal",
}
CURRENCIES = {"CNY": "CNY", "人民币": "CNY"}
METHOD = "wechat_pay"
BEIJING = "+08:00"
_FEN = Decimal("0.01")
_INDEX = {name: i for i, name in enumerate(COLUMNS)}


def parse(data: bytes) -> list[SettlementLine]:
    """The refunds a REFUND bill lists; MalformedReport("line N: ...") when it cannot be read."""
    lines = _lines(data)
    if not lines or not lines[0].strip():
        raise MalformedReport("line 1: empty file, not a WeChat Pay bill")
    _check_header(lines[0], COLUMNS, 1)
    result: list[SettlementLine] = []
    requested_total = 0
    number = 1
    for number, text in enumerate(lines[1:], start=2):
        if text.startswith(SUMMARY_COLUMNS[0]):
            _check_summary(lines, number, len(result), requested_total)
            return result
        fields = _fields(text, number, len(COLUMNS))
        line = _line(fields, number)
        requested_total += line.amount
        result.append(line)
    raise MalformedReport(f"line {number + 1}: the file ends without its summary (truncated)")


def _lines(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MalformedReport(f"line {line}: not UTF-8, WeChat Pay's bill encoding") from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    for index, content in enumerate(lines, start=1):
        if "\r" in content.removesuffix("\r"):
            raise MalformedReport(f"line {index}: bare CR inside a line")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _check_header(text: str, expected: tuple[str, ...], number: int) -> None:
    if text.startswith("merchant_refund_no,"):
        raise MalformedReport(
            f"line {number}: the sandbox gateway's settlement CSV, not a WeChat Pay bill"
        )
    got = _split(text, number)
    for column, name in enumerate(expected):
        if column >= len(got):
            raise MalformedReport(
                f"line {number}: header stops after {len(got)} columns; {name} is missing"
            )
        if got[column] != name:
            raise MalformedReport(
                f"line {number}: column {column + 1} is {got[column]!r}, expected {name!r}"
            )
    if len(got) != len(expected):
        raise MalformedReport(f"line {number}: {len(got)} columns, expected {len(expected)}")


def _split(text: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as error:
        raise MalformedReport(f"line {number}: {error}") from None
    return rows[0] if rows else []


def _fields(text: str, number: int, count: int) -> list[str]:
    raw = _split(text, number)
    if len(raw) != count:
        raise MalformedReport(f"line {number}: {len(raw)} fields, expected {count}")
    fields = []
    for column, value in enumerate(raw):
        if not value.startswith("`"):
            raise MalformedReport(f"line {number}: field {column + 1} lacks its backtick prefix")
        fields.append(value[1:])
    return fields


def _fen(value: str, number: int, name: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise MalformedReport(f"line {number}: {name} {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(_FEN):
        raise MalformedReport(f"line {number}: {name} {value!r} is not yuan with 2 decimals")
    return int(amount * 100)


def _time(value: str, number: int, name: str) -> str:
    # "2026-11-01 10:00:00", Beijing time: ISO 8601 with its offset made explicit.
    if len(value) != 19 or value[10] != " ":
        raise MalformedReport(f"line {number}: {name} {value!r} is not YYYY-MM-DD HH:MM:SS")
    return value.replace(" ", "T") + BEIJING


def _line(fields: list[str], number: int) -> SettlementLine:
    def get(name: str) -> str:
        return fields[_INDEX[name]]

    status = STATUSES.get(get("退款状态"))
    if status is None:
        raise MalformedReport(f"line {number}: unknown 退款状态 {get('退款状态')!r}")
    currency = CURRENCIES.get(get("货币种类"))
    if currency is None:
        raise MalformedReport(f"line {number}: unknown 货币种类 {get('货币种类')!r}")
    if not get("商户退款单号") or not get("微信退款单号"):
        raise MalformedReport(f"line {number}: a refund without its numbers")
    done = get("退款成功时间") or get("退款申请时间")
    return SettlementLine(
        merchant_refund_no=get("商户退款单号"),
        provider_reference=get("微信退款单号"),
        # What we asked for (equal to 退款金额 unless a non-recharge coupon is refunded too).
        amount=_fen(get("申请退款金额"), number, "申请退款金额"),
        currency=currency,
        method=METHOD,
        status=status,
        completed_at=_time(done, number, "退款成功时间"),
    )


def _check_summary(lines: list[str], number: int, count: int, requested: int) -> None:
    _check_header(lines[number - 1], SUMMARY_COLUMNS, number)
    if len(lines) != number + 1:
        what = "missing" if len(lines) <= number else "followed by more lines"
        raise MalformedReport(f"line {number + 1}: the summary's totals row is {what}")
    totals = _fields(lines[number], number + 1, len(SUMMARY_COLUMNS))
    if not totals[0].isdigit() or int(totals[0]) != count:
        raise MalformedReport(f"line {number + 1}: 总交易单数 {totals[0]!r}, but {count} lines")
    summed = _fen(totals[6], number + 1, "申请退款总金额")
    if summed != requested:
        raise MalformedReport(
            f"line {number + 1}: 申请退款总金额 is {summed} fen, the lines add up to {requested}"
        )
