"""The daily settlement report (GET /settlements/<day>.csv), with injected discrepancies."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date
from typing import Any

from sandbox.gateway.faults import SettlementRules
from services.payout.providers.gateway import SETTLEMENT_COLUMNS

_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def render_settlement(
    day: date, rows: list[dict[str, Any]], rules: SettlementRules | None = None
) -> str:
    """The CSV settlement report of ``day``, with any discrepancies ``rules`` inject."""
    rules = rules or SettlementRules(0, {}, {}, frozenset())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SETTLEMENT_COLUMNS)
    for row in rows:
        number = row["merchant_refund_no"]
        if number in rules.omit:
            continue
        line = {
            **row,
            "amount": rules.amount_overrides.get(number, row["amount"]),
            "status": rules.status_overrides.get(number, row["status"]),
        }
        writer.writerow([line[column] for column in SETTLEMENT_COLUMNS])
    for index in range(1, rules.extra_lines + 1):
        # Stable across downloads, so a reconciliation can be run twice on one report.
        seed = hashlib.sha256(f"extra:{day.isoformat()}:{index}".encode()).hexdigest()
        writer.writerow(
            [
                f"UNKNOWN-{day.isoformat()}-{index}",
                "gw_" + seed[:24],
                100 * index,
                "CNY",
                "card",
                "success",
                f"{day.isoformat()}T23:59:59.000000Z",
            ]
        )
    return out.getvalue()


def parse_day(raw: str) -> date | None:
    if not _DAY_PATTERN.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
