"""A return's words, each defined once: its states, what its clock asks for, and the rules
its steps cite. Standard library only (the aggregate, the API's bodies and the read model
use them)."""

from __future__ import annotations

from typing import Literal

ReturnState = Literal[
    "planned",
    "awaiting_return",
    "in_transit",
    "delivered",
    "received",
    "paid",
    "exchange_ready",
    "with_reviewer",
    "closed_not_shipped",
    "withdrawn",
    "accepted_automatically",
]
ReturnDue = Literal["ship_remind", "ship_missed", "receipt_remind", "receipt_overdue"]
# What a warehouse may record a receipt for: the goods are on their way or arrived.
RECEIVABLE = frozenset({"in_transit", "delivered"})
# Before the goods are received, a withdrawal ends the return.
WITHDRAWABLE = frozenset({"planned", "awaiting_return", "in_transit", "delivered"})
# Rules the return's clock cites (its actor is `system:<rule>`).
SHIP_REMINDER = "return.ship_by_reminder"
SHIP_BY_MISSED = "return.ship_by_missed"
RECEIPT_REMINDER = "return.receipt_reminder"
RECEIPT_OVERDUE = "return.receipt_overdue"
RECEIVED_AS_EXPECTED = "return.received_as_expected"
# Where a receipt's outcome leaves the return (an exchange's replacement is announced next).
AFTER_RECEIPT: dict[str, ReturnState] = {
    "refund": "paid",
    "exchange": "received",
    "reviewer": "with_reviewer",
}
