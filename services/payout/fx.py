"""Cross-border payouts: converting an amount with a recorded rate and explicit rounding.

A conversion keeps everything an auditor needs to redo it: the rate, where it
came from and when, the exact (unrounded) result and the rounding applied. Amounts
stay integer minor units at both ends, each with its currency's exponent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Literal

from shared.money import Money, exponent_of

Rounding = Literal["down", "half_even", "half_up"]
_MODES = {"down": ROUND_DOWN, "half_even": ROUND_HALF_EVEN, "half_up": ROUND_HALF_UP}


@dataclass(frozen=True)
class Rate:
    """`rate` units of `quote` for one unit of `base` (major units), as `source` said at `at`."""

    base: str
    quote: str
    rate: Decimal
    source: str
    at: datetime

    def __post_init__(self) -> None:
        exponent_of(self.base)
        exponent_of(self.quote)
        if not isinstance(self.rate, Decimal) or self.rate <= 0:
            raise ValueError("a rate is a positive Decimal (never a float)")
        if self.at.utcoffset() is None:
            raise ValueError("a rate's time must be timezone-aware")


@dataclass(frozen=True)
class Conversion:
    source: Money
    target: Money
    rate: Rate
    exact: Decimal  # the unrounded result, in major units of the target currency
    rounding: Rounding

    def as_record(self) -> dict[str, str | int]:
        """What a payout stores with itself: enough to redo the conversion."""
        return {
            "source_amount": self.source.amount,
            "source_currency": self.source.currency,
            "target_amount": self.target.amount,
            "target_currency": self.target.currency,
            "rate": str(self.rate.rate),
            "rate_source": self.rate.source,
            "rate_at": self.rate.at.isoformat(),
            "exact": str(self.exact),
            "rounding": self.rounding,
        }


def convert(amount: Money, rate: Rate, rounding: Rounding = "half_even") -> Conversion:
    """Convert `amount` (in `rate.base`) to `rate.quote`, rounding to the quote's minor unit."""
    if amount.currency != rate.base:
        raise ValueError(f"the rate converts {rate.base}, not {amount.currency}")
    exact = amount.to_major() * rate.rate
    places = Decimal(1).scaleb(-exponent_of(rate.quote))
    rounded = exact.quantize(places, rounding=_MODES[rounding])
    minor = int(rounded.scaleb(exponent_of(rate.quote)))
    return Conversion(amount, Money(minor, rate.quote), rate, exact, rounding)
