"""Alipay's trade bill (`alipay.data.dataservice.bill.downloadurl.query`, bill_type `trade`):
a zip holding the GBK-encoded CSV "业务明细" file, read into our settlement lines.

The file opens with `#` comment lines (title, account, period), then the header row and
one row per trade or refund, then a `#` end-of-list marker and `#` totals. Alipay appends a
tab to values so spreadsheets keep long numbers as text; those are stripped. Refund rows
(业务类型 退款) carry our `out_request_no` in 退款批次号/请求号 and a negative amount.
"""

from __future__ import annotations

import csv
import io
import zipfile

from services.payout.providers.alipay.amounts import beijing_time, fen
from services.payout.providers.base import MalformedReport, SettlementLine

ENCODING = "gbk"
COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
REFUND_TYPE = "退款"
DETAIL_SUFFIX = "业务明细.csv"
END_MARKER = "业务明细列表结束"
ZIP_MAGIC = b"PK\x03\x04"
GATEWAY_HEADER_START = "merchant_refund_no,provider_reference"
_COLUMN = {name: index for index, name in enumerate(COLUMNS)}


def parse(data: bytes) -> list[SettlementLine]:
    """The refunds in a trade bill (the zip, or its bare 业务明细 CSV); MalformedReport
    ("line N: ...") for anything that is not that file, exactly."""
    if data.startswith(ZIP_MAGIC):
        data = _detail_of_zip(data)
    if data.startswith(b"\xef\xbb\xbf"):
        raise MalformedReport("line 1: UTF-8 byte order mark: Alipay's bills are GBK")
    try:
        text = data.decode(ENCODING)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise MalformedReport(f"line {line}: not GBK text (Alipay's bills are GBK)") from None
    return _parse_text(text)


def _detail_of_zip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if _member_name(info).endswith(DETAIL_SUFFIX):
                    return archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
        raise MalformedReport(f"line 0: unreadable zip: {error}") from None
    raise MalformedReport(f"line 0: the zip holds no *{DETAIL_SUFFIX} file")


def _member_name(info: zipfile.ZipInfo) -> str:
    # Alipay's zips name members in GBK without the UTF-8 flag; zipfile then reads cp437.
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode(ENCODING)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _parse_text(text: str) -> list[SettlementLine]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header_at: int | None = None
    result: list[SettlementLine] = []
    ended = False
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if "\r" in line:
            raise MalformedReport(f"line {number}: bare CR inside a line")
        if line.startswith("#"):
            if header_at is not None and END_MARKER in line:
                ended = True
                break
            continue
        if not line.strip():
            continue
        fields = _fields(number, line)
        if header_at is None:
            _check_header(number, line, fields)
            header_at = number
            continue
        found = _line(number, fields)
        if found is not None:
            result.append(found)
    if header_at is None:
        raise MalformedReport(f"line {len(lines) + 1}: no 业务明细 header: not an Alipay bill")
    if not ended:
        raise MalformedReport(f"line {len(lines) + 1}: truncated: no {END_MARKER} marker")
    return result


def _fields(number: int, line: str) -> list[str]:
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error as error:
        raise MalformedReport(f"line {number}: {error}") from None
    if len(rows) != 1:
        raise MalformedReport(f"line {number}: not one CSV record")
    return [field.strip() for field in rows[0]]


def _check_header(number: int, line: str, fields: list[str]) -> None:
    if tuple(fields) == COLUMNS:
        return
    if line.startswith(GATEWAY_HEADER_START):
        raise MalformedReport(f"line {number}: the sandbox gateway's settlement, not Alipay's")
    missing = [name for name in COLUMNS if name not in fields]
    if missing:
        raise MalformedReport(f"line {number}: header lacks {', '.join(missing)}")
    if len(fields) != len(COLUMNS):
        raise MalformedReport(f"line {number}: header has {len(fields)} columns, not 25")
    raise MalformedReport(f"line {number}: header columns reordered")


def _line(number: int, fields: list[str]) -> SettlementLine | None:
    if len(fields) != len(COLUMNS):
        raise MalformedReport(f"line {number}: {len(fields)} fields, expected {len(COLUMNS)}")

    def field(name: str) -> str:
        return fields[_COLUMN[name]]

    if field("业务类型") != REFUND_TYPE:
        return None  # payments and other business: not refunds
    request_no = field("退款批次号/请求号")
    trade_no = field("支付宝交易号")
    if not request_no or not trade_no:
        raise MalformedReport(f"line {number}: refund without 支付宝交易号 or 退款批次号/请求号")
    try:
        amount = abs(fen(field("订单金额（元）")))
    except ValueError as error:
        raise MalformedReport(f"line {number}: 订单金额（元）: {error}") from None
    if amount == 0:
        raise MalformedReport(f"line {number}: 订单金额（元） is zero")
    try:
        completed = beijing_time(field("完成时间"))
    except ValueError:
        raise MalformedReport(f"line {number}: 完成时间 is not yyyy-MM-dd HH:mm:ss") from None
    return SettlementLine(
        merchant_refund_no=request_no,
        provider_reference=trade_no,
        amount=amount,
        currency="CNY",
        method="alipay",
        status="success",
        completed_at=completed.isoformat(),
    )
