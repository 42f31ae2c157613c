"""Exchange rates (GET /v1/fx/rates): a fixed table, so conversions are reproducible."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

# significant digits, half-even. Documented in sandbox/GATEWAY.md.
FX_SOURCE = "sandbox-fx"
FX_AS_OF = "2026-01-02T00:00:00Z"
_FX_DIRECT = {
    ("CNY", "USD"): "0.1375",
    ("CNY", "JPY"): "20.85",
    ("CNY", "KWD"): "0.04225",
    ("EUR", "CNY"): "7.8125",
    ("USD", "JPY"): "151.6",
}
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


def _fx_table() -> dict[tuple[str, str], Decimal]:
    table: dict[tuple[str, str], Decimal] = {}
    inverse_context = Context(prec=10, rounding=ROUND_HALF_EVEN)
    for (base, quote), text in _FX_DIRECT.items():
        rate = Decimal(text)
        table[(base, quote)] = rate
        table[(quote, base)] = inverse_context.divide(Decimal(1), rate).normalize()
    return table


FX_RATES = _fx_table()
