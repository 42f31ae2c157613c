"""Erasure in the domains, in memory: intake's erasure record and notify's open messages; and no
domain module touches the keystore (sealing happens in the application layer)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.intake.erasure import CustomerErasure
from services.intake.publishing import to_integration
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import CUSTOMER_ERASED

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SERVICES = Path(__file__).parents[2] / "services"


def test_an_erasure_is_recorded_once_per_shredded_key() -> None:
    erasure = CustomerErasure(tenant="acme", customer_id="C-42")
    assert erasure.id == CustomerErasure.create_id("acme", "C-42")
    assert erasure.erase(
        key_ids=["ck_1_g1"], refund_ids=["rf_b", "rf_a"], reason="asked", actor="staff:ann", at=NOW
    )
    # Erasing again shreds nothing new: nothing is recorded.
    assert not erasure.erase(
        key_ids=["ck_1_g1"], refund_ids=["rf_a"], reason="again", actor="staff:bo", at=NOW
    )
    # The customer came back and was erased again: the new key is recorded.
    assert erasure.erase(
        key_ids=["ck_1_g1", "ck_2_g2"], refund_ids=[], reason="", actor="staff:bo", at=NOW
    )
    assert erasure.key_ids == ["ck_1_g1", "ck_2_g2"]
    assert [e["actor"] for e in erasure.erasures] == ["staff:ann", "staff:bo"]
    events = erasure.collect_events()
    published = [to_integration(e) for e in events]
    erased = [p for p in published if p is not None]
    assert [p.TYPE for p in erased] == ["customer.erased.v1", "customer.erased.v1"]
    first = erased[0].model_dump()
    assert first["refund_ids"] == ["rf_a", "rf_b"] and first["actor"] == "staff:ann"
    assert first["refund_id"].startswith("ce_") and first["customer_id"] == "C-42"


def test_a_customer_without_keys_is_still_recorded_once() -> None:
    erasure = CustomerErasure(tenant="acme", customer_id="C-1")
    assert erasure.erase(key_ids=[], refund_ids=["rf_a"], reason="", actor="staff:a", at=NOW)
    assert not erasure.erase(key_ids=[], refund_ids=["rf_a"], reason="", actor="staff:a", at=NOW)


def test_erased_customers_open_messages_fail_and_sent_ones_stay() -> None:
    c = Correspondence(refund_id="rf_1", tenant="acme")
    c.record_contact(email="pii:v1:sealed-e", phone="pii:v1:sealed-p", locale="en", customer_id="C")
    c.schedule("received", {}, causation_id="e1")
    c.record_sent(
        step="received",
        channel="email",
        message_id="m",
        recipient_masked="l***@example.com",
        locale="en",
        template="t",
        sent_at=NOW,
    )
    c.schedule("approved", {}, causation_id="e2")
    assert c.fail_open(cause=CUSTOMER_ERASED, failed_at=NOW)
    assert c.pending() == []
    assert c.delivery("received", "email").status == "sent"
    failed = {(d.step, d.channel) for d in c.deliveries.values() if d.status == "failed"}
    assert failed == {
        ("received", "sms"),
        ("received", "in_app"),
        ("approved", "email"),
        ("approved", "sms"),
        ("approved", "in_app"),
    }
    assert {d.last_error for d in c.deliveries.values() if d.status == "failed"} == {
        CUSTOMER_ERASED
    }
    assert not c.fail_open(cause=CUSTOMER_ERASED, failed_at=NOW)  # nothing left open


@pytest.mark.parametrize(
    "module",
    ["intake/domain.py", "intake/erasure.py", "review/domain.py", "notify/messages/domain.py"],
)
def test_domains_never_see_the_keystore(module: str) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse((SERVICES / module).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not {m for m in imported if m.startswith(("shared.keystore", "cryptography"))}
