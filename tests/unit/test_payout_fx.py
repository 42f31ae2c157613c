"""Currency exponents and FX rounding, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.payout.fx import Rate, convert
from shared.money import Money

AT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def rate(base: str, quote: str, value: str) -> Rate:
    return Rate(base, quote, Decimal(value), source="test-feed", at=AT)


@pytest.mark.parametrize(
    ("amount", "currency", "quote", "value", "rounding", "expected"),
    [
        # CNY (2) → JPY (0): 129.00 * 20.555 = 2651.595 → whole yen
        (12900, "CNY", "JPY", "20.555", "half_even", 2652),
        (12900, "CNY", "JPY", "20.555", "down", 2651),
        # JPY (0) → CNY (2): 1001 * 0.048650 = 48.699650 → fen
        (1001, "JPY", "CNY", "0.048650", "half_even", 4870),
        (1001, "JPY", "CNY", "0.048650", "down", 4869),
        # USD (2) → KWD (3): 10.00 * 0.30745 = 3.0745 → fils; a tie
        (1000, "USD", "KWD", "0.30745", "half_even", 3074),
        (1000, "USD", "KWD", "0.30745", "half_up", 3075),
        # KWD (3) → CNY (2): 1.234 * 23.4 = 28.8756 → fen
        (1234, "KWD", "CNY", "23.4", "half_even", 2888),
        # one fen at a tiny rate rounds to nothing
        (1, "CNY", "USD", "0.1381", "half_even", 0),
    ],
)
def test_conversion_rounds_to_the_target_minor_unit(
    amount: int, currency: str, quote: str, value: str, rounding: str, expected: int
) -> None:
    done = convert(Money(amount, currency), rate(currency, quote, value), rounding)  # type: ignore[arg-type]
    assert done.target == Money(expected, quote)
    assert isinstance(done.target.amount, int)
    assert done.exact == Money(amount, currency).to_major() * Decimal(value)


def test_a_conversion_records_how_to_redo_it() -> None:
    done = convert(Money(12900, "CNY"), rate("CNY", "JPY", "20.555"))
    record = done.as_record()
    assert record["rate"] == "20.555" and record["rate_source"] == "test-feed"
    assert record["rounding"] == "half_even" and record["exact"] == "2651.59500"
    assert record["rate_at"] == AT.isoformat()


def test_floats_wrong_pairs_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        Rate("CNY", "JPY", 20.5, source="x", at=AT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        Rate("CNY", "JPY", Decimal("20.5"), source="x", at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="converts CNY"):
        convert(Money(100, "USD"), rate("CNY", "JPY", "20"))
    with pytest.raises(ValueError, match="unsupported currency"):
        rate("CNY", "XXX", "1")
