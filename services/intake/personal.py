"""Which of intake's data is personal: sealed with the customer's key before it is stored,
and opened only to show it to the tenant (shared/keystore.py).

Sealed: the customer's name, e-mail, phone and address, the request's description, each
evidence record's description, the evidence note, the appeal statement and the withdrawal
reason. Not sealed: ids (the customer id is the platform's pseudonym), amounts, items,
reasons and outcomes from fixed lists, evidence URLs and hashes, and `metadata` (the
platform's own, documented as not for personal data).

After erasure every sealed value reads as `[erased]`; nothing else changes.
"""

from __future__ import annotations

from typing import Any

from shared.contracts import (
    SEALED_ADDRESS,
    SEALED_DESCRIPTION,
    SEALED_EMAIL,
    SEALED_EVIDENCE_DESCRIPTION,
    SEALED_EVIDENCE_NOTE,
    SEALED_NAME,
    SEALED_PHONE,
    SEALED_STATEMENT,
    SEALED_WITHDRAWAL_REASON,
)
from shared.keystore import Keystore, Subject, key_id_of

CONTACT = {
    "name": SEALED_NAME,
    "email": SEALED_EMAIL,
    "phone": SEALED_PHONE,
    "address": SEALED_ADDRESS,
}
TIMELINE = {"withdrawn": ("reason", SEALED_WITHDRAWAL_REASON)}
EVIDENCE = SEALED_EVIDENCE_DESCRIPTION
NOTE = SEALED_EVIDENCE_NOTE
STATEMENT = SEALED_STATEMENT
WITHDRAWAL = SEALED_WITHDRAWAL_REASON


class Sealer:
    """Seals one customer's texts; empty texts stay empty (there is nothing to protect)."""

    def __init__(self, keystore: Keystore, subject: Subject) -> None:
        self.keystore = keystore
        self.subject = subject

    def text(self, value: str, field: str) -> str:
        return self.keystore.seal(self.subject, value, field=field) if value else value

    def customer(self, customer: dict[str, Any]) -> dict[str, Any]:
        return {
            name: self.text(value, CONTACT[name]) if name in CONTACT and value else value
            for name, value in customer.items()
        }

    def evidence(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**record, "description": self.text(record.get("description", ""), EVIDENCE)}
            for record in records
        ]

    def request(self, draft: dict[str, Any]) -> dict[str, Any]:
        """A validated create request with its personal data sealed."""
        return {
            **draft,
            "customer": self.customer(draft["customer"]),
            "description": self.text(draft["description"], SEALED_DESCRIPTION),
            "evidence": self.evidence(draft["evidence"]),
        }


class Shower:
    """Opens sealed values for the tenant's eyes: plaintext, or `[erased]`."""

    def __init__(self, keystore: Keystore) -> None:
        self.keystore = keystore

    def text(self, value: Any, field: str) -> Any:
        return self.keystore.show(value, field=field) if isinstance(value, str) else value

    def customer(self, customer: dict[str, Any]) -> dict[str, Any]:
        return {
            name: self.text(value, CONTACT[name]) if name in CONTACT else value
            for name, value in customer.items()
        }

    def evidence(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**record, "description": self.text(record["description"], EVIDENCE)}
            if "description" in record
            else record
            for record in records
        ]

    def appeals(self, appeals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**a, "statement": self.text(a.get("statement"), STATEMENT)} for a in appeals]

    def withdrawal(self, withdrawal: dict[str, Any] | None) -> dict[str, Any] | None:
        if withdrawal is None:
            return None
        return {**withdrawal, "reason": self.text(withdrawal.get("reason"), WITHDRAWAL)}

    def timeline(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = []
        for entry in entries:
            sealed = TIMELINE.get(entry.get("step", ""))
            if sealed and sealed[0] in entry:
                entry = {**entry, sealed[0]: self.text(entry[sealed[0]], sealed[1])}
            shown.append(entry)
        return shown

    def erased(self, customer: dict[str, Any]) -> bool:
        """Whether the customer's contact was sealed under a key that is now erased."""
        key_ids = {key_id_of(customer.get(name)) for name in ("email", "phone")} - {None}
        return any(self.keystore.is_erased(str(key_id)) for key_id in key_ids)
