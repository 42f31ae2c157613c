"""The trade bill (bill_type `trade`) as Alipay serves it: a zip holding the GBK CSV
"业务明细" file (and its "汇总" summary). Days are Beijing days."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from datetime import date, datetime, timedelta
from typing import Any

from sandbox.alipay.protocol import BEIJING, TIME_FORMAT, yuan
from sandbox.alipay.store import Store

# The header row, as Alipay writes it.
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
RULE = "-" * 41


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, BEIJING).strftime(TIME_FORMAT)


def _cn_day(day: date, clock: str = "00:00:00") -> str:
    return f"{day.year}年{day.month:02d}月{day.day:02d}日 {clock}"


def _row(
    trade: dict[str, Any], kind: str, amount: str, created: float, done: float, request_no: str
) -> list[str]:
    # Alipay appends a tab to long numbers so spreadsheets keep them as text.
    return [
        f"{trade['trade_no']}\t",
        f"{trade['out_trade_no'] or ''}\t",
        kind,
        "sandbox order",
        _when(created),
        _when(done),
        "",
        "",
        "",
        "",
        "sandbox-buyer@example.com",
        amount,
        amount,
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "",
        "0.00",
        "0.00",
        f"{request_no}\t" if request_no else "",
        "0.00",
        "0.00",
        "",
    ]


def render_detail(store: Store, seller_id: str, day: date, now: float | None = None) -> bytes:
    """The 业务明细 CSV for `day` (Beijing), GBK: payments made and refunds paid that day."""
    moment = time.time() if now is None else now
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp()
    end = start + 86400
    out = io.StringIO()
    out.write(f"#支付宝业务明细查询\n#账号：[{seller_id}0156]\n")
    out.write(f"#起始日期：[{_cn_day(day)}]   终止日期：[{_cn_day(day + timedelta(days=1))}]\n")
    out.write(f"#{RULE}业务明细列表{RULE}\n")
    writer = csv.writer(out, lineterminator="\n")
    out.write(HEADER + "\n")
    trades = store.trades_created(start, end)
    refunds = [r for r in store.refunds_paid(start, end) if r["paid_at"] <= moment]
    paid_total = 0
    for trade in trades:
        paid_total += trade["total"]
        at = trade["created_at"]
        writer.writerow(_row(trade, "交易", yuan(trade["total"]), at, at, ""))
    refund_total = 0
    for refund in refunds:
        refund_total += refund["amount"]
        amount = "-" + yuan(refund["amount"])
        writer.writerow(
            _row(
                refund, "退款", amount, refund["created_at"], refund["paid_at"],
                refund["out_request_no"],
            )
        )  # fmt: skip
    out.write(f"#{RULE}业务明细列表结束{RULE}\n")
    out.write(f"#交易合计：{len(trades)}笔，商家实收：{yuan(paid_total)}元，商家优惠：0.00元\n")
    out.write(f"#退款合计：{len(refunds)}笔，商家实收：-{yuan(refund_total)}元，商家优惠：0.00元\n")
    out.write(f"#导出时间：[{_cn_day(day + timedelta(days=1), '09:00:00')}]\n")
    return out.getvalue().encode("gbk")


def render_zip(store: Store, seller_id: str, day: date, now: float | None = None) -> bytes:
    """The download: `<seller><yyyymmdd>_业务明细.csv` and its 汇总, GBK like Alipay's."""
    detail = render_detail(store, seller_id, day, now)
    stem = f"{seller_id}0156_{day:%Y%m%d}"
    summary = "#支付宝业务汇总查询\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\n合计,,,\n"
    buffer = io.BytesIO()
    # Stamped with the bill's export time, not the moment of download: Alipay makes the file
    # once, and the same bill downloaded twice is the same bytes (payout digests them).
    exported = day + timedelta(days=1)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (
            (f"{stem}_业务明细.csv", detail),
            (f"{stem}_业务明细(汇总).csv", summary.encode("gbk")),
        ):
            entry = zipfile.ZipInfo(name, (exported.year, exported.month, exported.day, 9, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()
