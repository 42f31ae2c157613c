"""The itemized balance change report ("Balance change from activity",
`balance_change_from_activity.itemized.3`) as Stripe's Reports API serves it: a UTF-8 CSV
with the requested columns, amounts in major units with the currency's decimals at Stripe,
times in UTC as `YYYY-MM-DD HH:MM:SS`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

REPORT_TYPE = "balance_change_from_activity.itemized.3"
# The columns the payout side asks for (services/payout/providers/stripe/settlement.py).
COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "charge_id",
    "payment_intent_id",
    "payment_method_type",
    "refund_metadata[merchant_refund_no]",
)
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
     "vuv", "xaf", "xof", "xpf"}
)  # fmt: skip
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def decimals(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def major(amount: int, currency: str) -> str:
    places = decimals(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def render(transactions: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for txn in transactions:
        created = datetime.fromtimestamp(txn["created"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        description = "REFUND FOR CHARGE" if txn["category"] == "refund" else "REFUND FAILURE"
        writer.writerow(
            (
                txn["id"],
                created,
                txn["currency"],
                major(txn["amount"], txn["currency"]),
                major(0, txn["currency"]),
                major(txn["amount"], txn["currency"]),
                txn["category"],
                txn["source_id"],
                description,
                txn["charge_id"],
                txn["payment_intent_id"] or "",
                "card",
                txn["merchant_refund_no"],
            )
        )
    return out.getvalue().encode("utf-8")
