"""Money as integer minor units plus an ISO 4217 currency — never floats."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Minor-unit exponents (ISO 4217). Currencies not listed are refused, so an
# unknown code can never be silently treated as having two decimals.
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "SGD": 2, "AUD": 2, "CAD": 2,
    "CHF": 2, "TWD": 2, "THB": 2, "MYR": 2, "INR": 2, "NZD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "PLN": 2, "BRL": 2, "MXN": 2, "ZAR": 2, "AED": 2, "SAR": 2, "PHP": 2,
    "IDR": 2, "VND": 0, "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


def exponent_of(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise ValueError(f"unsupported currency {currency!r}") from None


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: `amount` minor units of `currency` (12900 CNY = 129.00 yuan)."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units")
        exponent_of(self.currency)

    @classmethod
    def from_major(cls, value: str | Decimal, currency: str) -> Money:
        """Parse a decimal string in major units ("500.00") exactly; refuse sub-minor digits."""
        scaled = Decimal(value).scaleb(exponent_of(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more decimals than {currency} allows")
        return cls(int(scaled), currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def to_major(self) -> Decimal:
        return Decimal(self.amount).scaleb(-exponent_of(self.currency))

    def format(self) -> str:
        """'CNY 129.00' — locale-specific formats belong to notify's templates."""
        return f"{self.currency} {self.to_major():.{exponent_of(self.currency)}f}"

    def as_dict(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}
