"""Each returned line's share of the approved amount, exactly, in minor units.

Standard library and shared.money only: the ReturnCase aggregate uses it.
"""

from __future__ import annotations

from shared.money import Money


def allocate(amount: Money, values: list[Money]) -> list[Money]:
    """Split `amount` over lines in proportion to `values` (what each line was sold for),
    rounding each share down and giving the remainder to the last line, so the shares sum
    to `amount` exactly. Lines of no value share equally (the remainder again last)."""
    if not values:
        raise ValueError("nothing to allocate over")
    total = sum(value.amount for value in values)
    weights = [value.amount for value in values] if total > 0 else [1] * len(values)
    whole = sum(weights)
    shares = [amount.amount * weight // whole for weight in weights[:-1]]
    shares.append(amount.amount - sum(shares))
    return [Money(share, amount.currency) for share in shares]


def unreturned_share(price: Money, expected: int, received: int) -> Money:
    """What the units not sent back account for of a line's `price` (rounded down: the
    customer is paid the fraction of a minor unit)."""
    if expected <= 0 or not 0 <= received <= expected:
        raise ValueError(f"received {received} of {expected}")
    return Money(price.amount * (expected - received) // expected, price.currency)
