"""Stripe's amounts versus ours: both integers of a currency's smallest unit, but Stripe
keeps its own list of decimals (docs.stripe.com/currencies), which is not always ISO 4217.

- zero-decimal currencies (JPY, KRW, VND, CLP, …) are sent as whole units, like ours;
- three-decimal currencies (KWD, BHD, JOD, OMR, TND) are sent in thousandths, but the last
  digit must be 0: an amount Stripe cannot pay exactly is refused here, not rounded;
- ISK is zero-decimal in ISO 4217 yet two-decimal at Stripe for backwards compatibility,
  so 1 ISK is sent as 100.
"""

from __future__ import annotations

from shared.money import Money, exponent_of

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
     "VUV", "XAF", "XOF", "XPF"}
)  # fmt: skip
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class UnmappableAmount(ValueError):
    """An amount or currency Stripe cannot take exactly."""


def stripe_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(money: Money) -> tuple[int, str]:
    """`money` as Stripe's `amount` and lowercase `currency`; UnmappableAmount if inexact."""
    ours = exponent_of(money.currency)
    theirs = stripe_exponent(money.currency)
    amount = money.amount * 10 ** max(0, theirs - ours)
    if money.currency in THREE_DECIMAL and amount % 10:
        raise UnmappableAmount(
            f"Stripe takes {money.currency} in multiples of 10 thousandths; {money.amount} is not"
        )
    if theirs < ours:  # no such currency today: refuse rather than round
        raise UnmappableAmount(f"Stripe has fewer decimals for {money.currency} than we do")
    return amount, money.currency.lower()


def from_stripe(amount: int, currency: str) -> Money:
    """Stripe's `amount` in `currency` as our Money; UnmappableAmount if it does not divide."""
    code = currency.upper()
    try:
        ours = exponent_of(code)
    except ValueError as error:
        raise UnmappableAmount(str(error)) from None
    theirs = stripe_exponent(code)
    scale = 10 ** max(0, theirs - ours)
    if theirs < ours or amount % scale:
        raise UnmappableAmount(f"{amount} {currency} at Stripe is not a whole amount of ours")
    return Money(amount // scale, code)
