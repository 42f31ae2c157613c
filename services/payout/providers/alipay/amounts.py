"""Alipay's amounts and times: yuan as decimal strings, times in Beijing time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

# Alipay's open platform speaks Beijing time with no zone in the text; China keeps no DST.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CURRENCY = "CNY"


def yuan(fen: int) -> str:
    """Minor units (fen) → Alipay's yuan string with two decimals, exactly: 12345 → "123.45"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("an amount in fen must be an int")
    return f"{Decimal(fen).scaleb(-2):.2f}"


def fen(text: str) -> int:
    """Alipay's yuan string → fen, exactly; ValueError for anything else (never rounds)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"not a yuan amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a yuan amount: {text!r}")
    scaled = value.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"more than two decimals: {text!r}")
    return int(scaled)


def beijing_time(text: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` in Beijing time → an aware datetime; ValueError otherwise."""
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=BEIJING)


def beijing_now(now: float) -> str:
    return datetime.fromtimestamp(now, BEIJING).strftime(TIME_FORMAT)
