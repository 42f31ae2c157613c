"""Customer e-mail texts per step and locale (zh-CN, en), with locale-aware money and dates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.money import Money, exponent_of

LOCALES = ("zh-CN", "en")
FALLBACK_LOCALE = "en"

# zh-CN writes the symbol for the currencies its readers know by symbol; any
# other currency keeps its ISO code so that it can never be mistaken for yuan.
ZH_SYMBOLS = {"CNY": "¥", "USD": "US$", "EUR": "€", "GBP": "£", "HKD": "HK$", "JPY": "JP¥"}
METHODS = {
    "zh-CN": {
        "card": "银行卡",
        "alipay": "支付宝",
        "wechat_pay": "微信支付",
        "bank_transfer": "银行账户",
        "store_balance": "账户余额",
    },
    "en": {
        "card": "card",
        "alipay": "Alipay account",
        "wechat_pay": "WeChat Pay account",
        "bank_transfer": "bank account",
        "store_balance": "store balance",
    },
}
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True)
class Template:
    version: int
    subject: str
    body: str


@dataclass(frozen=True)
class Rendering:
    subject: str
    body: str
    locale: str
    template: str  # e.g. "paid.email.en@1": which text, so a complaint can be traced to it


_EN_SIGN = "\n\n— The refunds team\n"
_ZH_SIGN = "\n\n—— 退款服务团队\n"
_EN_REF = "\n\nReference: {reference}"
_ZH_REF = "\n\n参考编号：{reference}"

TEMPLATES: dict[tuple[str, str], Template] = {
    ("received", "en"): Template(
        1,
        "We received your refund request for order {order_id}",
        "Hello,\n\nWe have received your request to refund {amount} for order {order_id}. "
        "We will review it and e-mail you at every step." + _EN_REF + _EN_SIGN,
    ),
    ("received", "zh-CN"): Template(
        1,
        "我们已收到您订单 {order_id} 的退款申请",
        "您好：\n\n我们已收到您订单 {order_id} 的退款申请，申请金额 {amount}。"
        "我们会尽快审核，并在每个环节通过邮件通知您。" + _ZH_REF + _ZH_SIGN,
    ),
    ("approved", "en"): Template(
        1,
        "Your refund of {amount} has been approved",
        "Hello,\n\nGood news: your refund for order {order_id} has been approved. "
        "We will pay {amount} back to your {method} and e-mail you when it has been paid."
        + _EN_REF
        + _EN_SIGN,
    ),
    ("approved", "zh-CN"): Template(
        1,
        "您的退款 {amount} 已审核通过",
        "您好：\n\n您订单 {order_id} 的退款申请已审核通过。"
        "我们将把 {amount} 原路退回至您的{method}，到账后会再发邮件通知您。" + _ZH_REF + _ZH_SIGN,
    ),
    ("rejected", "en"): Template(
        1,
        "Your refund request for order {order_id} was not approved",
        "Hello,\n\nWe are sorry: your refund request for order {order_id} was not approved.\n\n"
        "Why: {explanation}\nPolicy rule: {rule}\n\n"
        "How to appeal: if you disagree, open this refund in the app or on the website where "
        'you requested it, choose "Appeal" and tell us why, adding any evidence you have. '
        "A member of staff reviews every appeal and answers you by e-mail." + _EN_REF + _EN_SIGN,
    ),
    ("rejected", "zh-CN"): Template(
        1,
        "您订单 {order_id} 的退款申请未通过审核",
        "您好：\n\n很抱歉，您订单 {order_id} 的退款申请未通过审核。\n\n"
        "原因：{explanation}\n依据规则：{rule}\n\n"
        "如何申诉：如有异议，请在您提交申请的应用或网站中打开该退款申请，选择“申诉”并说明理由，"
        "可附上相关凭证。每一份申诉都会由工作人员复核，并通过邮件答复您。" + _ZH_REF + _ZH_SIGN,
    ),
    ("paid", "en"): Template(
        1,
        "Your refund of {amount} has been paid",
        "Hello,\n\nYour refund has been paid: {amount} back to your {method}. "
        "It should arrive by {arrival}. If it has not arrived by then, contact customer "
        "service and quote the reference below." + _EN_REF + _EN_SIGN,
    ),
    ("paid", "zh-CN"): Template(
        1,
        "您的退款 {amount} 已原路退回",
        "您好：\n\n您的退款已原路退回：{amount} 已退至您的{method}，预计 {arrival} 前到账。"
        "如届时仍未到账，请联系客服并提供下方参考编号。" + _ZH_REF + _ZH_SIGN,
    ),
    ("payout_failed", "en"): Template(
        1,
        "We could not pay your refund of {amount} yet",
        "Hello,\n\nWe could not pay your refund of {amount} to your {method}. Your refund is "
        "not lost: we are looking into it and will try again or contact you about another "
        "way to pay. You do not need to do anything now." + _EN_REF + _EN_SIGN,
    ),
    ("payout_failed", "zh-CN"): Template(
        1,
        "您的退款 {amount} 暂未退回成功",
        "您好：\n\n您的退款 {amount} 暂时未能退至您的{method}。款项不会丢失，"
        "我们正在处理，将重新发起退款或与您联系改用其他方式。您目前无需任何操作。"
        + _ZH_REF
        + _ZH_SIGN,
    ),
}


def resolve_locale(locale: str | None) -> str:
    return locale if locale in LOCALES else FALLBACK_LOCALE


def format_money(money: Money, locale: str) -> str:
    """`¥129.00` (zh-CN, CNY), `CNY 129.00` (en); exact decimals of the currency, grouped."""
    digits = exponent_of(money.currency)
    number = f"{money.to_major():,.{digits}f}"
    if resolve_locale(locale) == "zh-CN" and money.currency in ZH_SYMBOLS:
        return f"{ZH_SYMBOLS[money.currency]}{number}"
    return f"{money.currency} {number}"


def format_date(iso: str, locale: str) -> str:
    """The calendar date in the offset the payout gave: `2026年11月5日` / `5 November 2026`."""
    day = datetime.fromisoformat(iso).date()
    if resolve_locale(locale) == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"


def _explanation(texts: Mapping[str, str], locale: str) -> str:
    return texts.get(locale) or texts.get(FALLBACK_LOCALE) or next(iter(texts.values()), "")


def _values(facts: Mapping[str, Any], locale: str, reference: str) -> dict[str, str]:
    values = {"reference": reference, "order_id": str(facts.get("order_id", "—"))}
    if "amount" in facts:
        values["amount"] = format_money(Money(**facts["amount"]), locale)
    if "method" in facts:
        values["method"] = METHODS[locale].get(facts["method"], facts["method"])
    if "expected_arrival" in facts:
        values["arrival"] = format_date(facts["expected_arrival"], locale)
    if "rule" in facts:
        values["rule"] = str(facts["rule"])
    if "explanation" in facts:
        values["explanation"] = _explanation(facts["explanation"], locale)
    return values


def render(step: str, locale: str | None, facts: Mapping[str, Any], *, reference: str) -> Rendering:
    """The e-mail of one step; KeyError when the facts lack what its text states."""
    chosen = resolve_locale(locale)
    template = TEMPLATES[step, chosen]
    values = _values(facts, chosen, reference)
    return Rendering(
        subject=template.subject.format_map(values),
        body=template.body.format_map(values),
        locale=chosen,
        template=f"{step}.email.{chosen}@{template.version}",
    )
