"""Events payout stored before its aggregates moved modules still load: every old topic
resolves, and events written by the release before the move (their stored form, below)
load into the aggregates through the current code."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from services.payout.application import PayoutApplication
from services.payout.callbacks import CallbackLog, RefusedCallback
from services.payout.credits import Coupon, StoreCredit
from shared.money import Money
from shared.settings import ServiceSettings
from shared.store import store_env

# Aggregate classes that moved out of services/payout/domain.py, with their event classes.
MOVED: dict[str, tuple[type[Any], list[str]]] = {
    "StoreCredit": (StoreCredit, ["Credited"]),
    "Coupon": (Coupon, ["Issued"]),
    "RefusedCallback": (RefusedCallback, ["Refused"]),
    "CallbackLog": (CallbackLog, ["Received", "Replayed"]),
}
AT = "2026-11-20T03:00:00+00:00"
NUMBER = "po_" + "1" * 32
REFUND = "rf_" + "2" * 32


def _time(text: str) -> dict[str, str]:
    return {"_type_": "datetime_iso", "_data_": text}


def _money(amount: int) -> dict[str, Any]:
    return {"_type_": "money", "_data_": {"amount": amount, "currency": "CNY"}}


def _created(aggregate: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": _time("2026-11-20T03:00:01+00:00"),
        "originator_topic": f"services.payout.domain:{aggregate}",
        **fields,
        "_audit": {"actor": "system:payout"},
    }


# As the release before the move stored them (captured from it): id, version, topic, state.
STORED_BEFORE_THE_MOVE: list[tuple[str, int, str, dict[str, Any]]] = [
    (
        "3aa35a3a-5adc-5026-b481-fef5864b80c0",
        1,
        "services.payout.domain:StoreCredit.Credited",
        _created(
            "StoreCredit",
            merchant_refund_no=NUMBER,
            refund_id=REFUND,
            tenant="acme",
            amount=_money(4200),
            at=_time(AT),
        ),
    ),
    (
        "7b7d3f69-5245-5b17-a0e0-cb3128e5d73d",
        1,
        "services.payout.domain:Coupon.Issued",
        _created(
            "Coupon",
            source_event_id="ev-1",
            refund_id=REFUND,
            tenant="acme",
            order_id="ORD-1",
            value=_money(500),
            reason="approval",
            granted_by="policy",
            at=_time(AT),
        ),
    ),
    (
        "7e290440-2f71-450d-82a5-4bbb7f3c19ce",
        1,
        "services.payout.domain:RefusedCallback.Refused",
        _created(
            "RefusedCallback",
            reason="bad-signature",
            callback_id="cb_forged",
            signature="t=1,v1=00",
            body_sha256="ab" * 32,
            received_at=_time(AT),
        ),
    ),
    (
        "082afaaa-363f-5e54-b58f-b67e918cbf94",
        1,
        "services.payout.domain:CallbackLog.Received",
        _created(
            "CallbackLog",
            callback_id="cb_1",
            type="refund.success",
            merchant_refund_no=NUMBER,
            status="success",
            outcome="paid",
            received_at=_time(AT),
        ),
    ),
    (
        "082afaaa-363f-5e54-b58f-b67e918cbf94",
        2,
        "services.payout.domain:CallbackLog.Replayed",
        {
            "timestamp": _time("2026-11-20T03:00:02+00:00"),
            "received_at": _time(AT),
            "_audit": {"actor": "system:payout"},
        },
    ),
]


@pytest.mark.parametrize("name", sorted(MOVED))
def test_every_old_topic_resolves_to_the_moved_class(name: str) -> None:
    aggregate, events = MOVED[name]
    assert resolve_topic(f"services.payout.domain:{name}") is aggregate
    for event in events:
        assert resolve_topic(f"services.payout.domain:{name}.{event}") is getattr(aggregate, event)


@pytest.fixture
def app(tmp_path: Path) -> Any:
    application = PayoutApplication(
        env=store_env(ServiceSettings(env="test", data_dir=tmp_path), "payout")
    )
    yield application
    application.close()


def test_events_stored_before_the_move_load(app: PayoutApplication) -> None:
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.UUID(originator_id),
                originator_version=version,
                topic=topic,
                state=json.dumps(state, separators=(",", ":")).encode(),
            )
            for originator_id, version, topic, state in STORED_BEFORE_THE_MOVE
        ]
    )
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)

    credit = app.store_credit(NUMBER)
    assert credit is not None
    assert (credit.refund_id, credit.amount, credit.at) == (REFUND, Money(4200, "CNY"), at)
    assert credit.reference.startswith("sb_")

    coupon = app.coupon("ev-1")
    assert coupon is not None
    assert (coupon.order_id, coupon.value, coupon.granted_by) == (
        "ORD-1",
        Money(500, "CNY"),
        "policy",
    )

    log = app.callback_log("cb_1")
    assert log is not None
    assert (log.outcome, log.repeats, log.version) == ("paid", 1, 2)

    refused = app.repository.get(uuid.UUID("7e290440-2f71-450d-82a5-4bbb7f3c19ce"))
    assert isinstance(refused, RefusedCallback)
    assert (refused.reason, refused.callback_id) == ("bad-signature", "cb_forged")

    # And the aggregates carry on: a repeat of the old callback is recorded as a new event.
    log.replayed(at)
    app.save(log)
    reloaded = app.callback_log("cb_1")
    assert reloaded is not None and reloaded.repeats == 2
    assert [type(e).__name__ for e in app.history(log.id)] == ["Received", "Replayed", "Replayed"]


def test_a_reconciliation_recorded_before_keeps_loading(app: PayoutApplication) -> None:
    """ReconciliationReport stayed in its module but is now declared as a dataclass."""
    state = {
        "timestamp": _time("2026-11-20T03:00:01+00:00"),
        "originator_topic": "services.payout.reconcile:ReconciliationReport",
        "day": {"_type_": "date_iso", "_data_": "2026-11-20"},
        "digest": "cd" * 32,
        "findings": [{"kind": "matched", "merchant_refund_no": "po_x", "detail": ""}],
        "counts": {"matched": 1},
        "actor": "zhao",
        "at": _time(AT),
        "_audit": {"actor": "system:payout"},
    }
    report_id = uuid.UUID("5dd8ec47-0aee-5237-a54b-bedf866f0756")
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=report_id,
                originator_version=1,
                topic="services.payout.reconcile:ReconciliationReport.Recorded",
                state=json.dumps(state).encode(),
            )
        ]
    )
    report = app.reconciliation(report_id)
    assert report is not None
    assert (report.day, report.counts, report.actor) == (date(2026, 11, 20), {"matched": 1}, "zhao")
