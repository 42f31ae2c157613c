"""The REFUND trade bill in WeChat Pay's format: UTF-8 CSV, every field backtick-prefixed,
amounts in yuan with two decimals, times in Beijing time, a summary block at the end."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sandbox.wechatpay.ledger import BEIJING, Ledger

HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,"
    "微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
    "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
APPID = "wx8888888888888888"
STATUS_WORDS = {
    "SUCCESS": "SUCCESS",
    "PROCESSING": "PROCESSING",
    "ABNORMAL": "CHANGE",
    "CLOSED": "REFUNDCLOSE",
}


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _time(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def render(ledger: Ledger, mchid: str, day: str) -> bytes | None:
    """The bill for one Beijing day; None when no refund was applied for that day."""
    refunds = [r for r in ledger.refunds_on(day) if r.mchid == mchid]
    if not refunds:
        return None
    rows = [HEADER]
    for r in refunds:
        payment = ledger.payment_of(r)
        paid_at = payment.paid_at if payment is not None else r.created_at
        fields = [
            _time(paid_at),
            APPID,
            mchid,
            "0",
            "",
            r.transaction_id,
            r.out_trade_no,
            "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "JSAPI",
            "REFUND",
            "OTHERS",
            "CNY",
            yuan(r.total),
            "0.00",
            _time(r.created_at),
            _time(r.success_at),
            r.refund_id,
            r.out_refund_no,
            yuan(r.refund),
            "0.00",
            "ORIGINAL",
            STATUS_WORDS[r.status],
            "sandbox goods",
            "",
            "0.00",
            "0.60%",
            yuan(r.total),
            yuan(r.refund),
            "",
        ]
        rows.append(",".join("`" + f for f in fields))
    requested = sum(r.refund for r in refunds)
    rows.append(SUMMARY)
    totals = [str(len(refunds)), "0.00", yuan(requested), "0.00", "0.00", "0.00", yuan(requested)]
    rows.append(",".join("`" + f for f in totals))
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 — WeChat Pay's documented hash_type
