"""How a customer message writes what it states, per locale (zh-CN, en): which locale a
customer's language tag gets, money from minor units, calendar dates, and the time of a
deadline in the zone the customer's shop keeps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import get_args
from zoneinfo import ZoneInfo

from shared.contracts import Locale
from shared.money import Money, exponent_of

LOCALES: tuple[str, ...] = get_args(Locale)  # the languages there are templates in
FALLBACK_LOCALE = "en"

# zh-CN writes the symbol for the currencies its readers know by symbol; any
# other currency keeps its ISO code so that it can never be mistaken for yuan.
ZH_SYMBOLS = {"CNY": "¥", "USD": "US$", "EUR": "€", "GBP": "£", "HKD": "HK$", "JPY": "JP¥"}
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# A deadline the customer must meet is written as a time of day, in the zone the shops and
# warehouses keep (the review policy's calendar zone, Asia/Shanghai): an instant in UTC, or
# in whatever offset review happened to serialise it, would have the customer guess.
DEADLINE_ZONE = ZoneInfo("Asia/Shanghai")
ZONE_NAMES = {"zh-CN": "北京时间", "en": "China time"}


def resolve_locale(locale: str | None) -> str:
    """The locale to write in for a customer's BCP 47 tag: the same one (any case), else one
    of the same language (`en-US` → en, `zh-Hans-CN` and `zh-TW` → zh-CN), else English."""
    tag = (locale or "").replace("_", "-").lower()
    language = tag.split("-")[0]
    exact = [known for known in LOCALES if known.lower() == tag]
    same_language = [known for known in LOCALES if known.lower().split("-")[0] == language]
    return (exact or same_language or [FALLBACK_LOCALE])[0]


def format_money(money: Money, locale: str) -> str:
    """`¥129.00` (zh-CN, CNY), `CNY 129.00` (en); exact decimals of the currency, grouped."""
    digits = exponent_of(money.currency)
    number = f"{money.to_major():,.{digits}f}"  # a Decimal from the minor units: exact
    if resolve_locale(locale) == "zh-CN" and money.currency in ZH_SYMBOLS:
        return f"{ZH_SYMBOLS[money.currency]}{number}"
    return f"{money.currency} {number}"


def format_date(iso: str, locale: str) -> str:
    """The calendar date in the offset the payout gave: `2026年11月5日` / `5 November 2026`."""
    day = datetime.fromisoformat(iso).date()
    if resolve_locale(locale) == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"


def format_deadline(iso: str, locale: str) -> str:
    """A deadline's date and time of day in DEADLINE_ZONE, saying which zone: zh-CN
    `2026年11月20日 23:59` then 北京时间 in full-width brackets; en `23:59 on 20 November 2026
    (China time, UTC+8)`."""
    moment = datetime.fromisoformat(iso).astimezone(DEADLINE_ZONE)
    chosen = resolve_locale(locale)
    day = format_date(moment.isoformat(), chosen)
    clock = f"{moment:%H:%M}"
    if chosen == "zh-CN":
        return f"{day} {clock}（{ZONE_NAMES[chosen]}）"
    offset = moment.utcoffset()
    hours = int(offset.total_seconds() // 3600) if offset is not None else 0
    return f"{clock} on {day} ({ZONE_NAMES[chosen]}, UTC{hours:+d})"


def in_locale(texts: Mapping[str, str], locale: str) -> str:
    """A text given per locale (a rule's explanation): the customer's, else English, else any."""
    return texts.get(locale) or texts.get(FALLBACK_LOCALE) or next(iter(texts.values()), "")
