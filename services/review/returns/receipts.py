"""What a warehouse's receipt must be to be recorded, the refusals that name why, and the
return's number. Standard library only (the ReturnCase aggregate uses them)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from services.review.returns.vocabulary import RECEIVABLE


def rma_of(refund_id: str) -> str:
    """The return's number: `RMA-` and 8 base32 characters, the same for a refund always."""
    digest = hashlib.sha256(f"rma/{refund_id}".encode()).digest()
    return "RMA-" + base64.b32encode(digest).decode()[:8]


class ReturnStateError(Exception):
    """The return's state does not allow the step (a 409 naming `code`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReceiptRefused(ValueError):
    """A receipt line the return cannot take (a 422 naming `field`, e.g. items.0.sku)."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


def check_receipt(state: str, items: list[dict[str, Any]], lines: list[dict[str, Any]]) -> None:
    """Refuse a receipt a return in `state`, asked for `items`, cannot take (nothing is
    recorded): not shipped or already ended (ReturnStateError), an item never approved for
    return, listed twice or more than was asked, or nothing at all (ReceiptRefused)."""
    if state not in RECEIVABLE:
        raise ReturnStateError(
            "return_not_receivable",
            f"the return is {state}: a receipt is recorded once the goods are shipped "
            "and before anything else ended the return",
        )
    asked = {item["sku"]: int(item["quantity"]) for item in items}
    seen: set[str] = set()
    for i, line in enumerate(lines):
        sku = line["sku"]
        if sku not in asked:
            raise ReceiptRefused(
                f"items.{i}.sku", "not_returned", f"{sku} was never approved for return"
            )
        if sku in seen:
            raise ReceiptRefused(f"items.{i}.sku", "duplicate", f"{sku} is listed twice")
        seen.add(sku)
        if line["quantity"] > asked[sku]:
            raise ReceiptRefused(
                f"items.{i}.quantity",
                "above_asked",
                f"{line['quantity']} of {sku} received, only {asked[sku]} asked for",
            )
    if not any(line["quantity"] > 0 for line in lines):
        raise ReceiptRefused("items", "nothing_received", "record at least one unit received")
