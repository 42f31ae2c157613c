"""The refund index's rows, built from stored events without replaying refunds
(services/intake/index_rows.py), are the rows a replay of each refund gives: in every
status, whether the events arrive in one batch or one at a time, kept or forgotten between
batches, and for the events every earlier release stored (tests/fixtures/stores)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.intake.application import IntakeApplication
from services.intake.domain import RefundRequest, Status
from services.intake.index import RefundIndex
from services.intake.index_rows import FACTS
from services.intake.returns import ReturnStatus
from services.intake.settings import IntakeSettings
from shared.store import store_env
from tests.unit.test_event_versions import recorded
from tests.unit.test_intake_domain import NOW, approve, pay, refund, reject
from tests.unit.test_intake_returns import Review, ship

STORES = Path(__file__).parents[1] / "fixtures" / "stores"
RELEASES = sorted(p.name for p in STORES.iterdir() if (p / "intake.sqlite").is_file())

Step = Callable[[RefundRequest], Any]


def _review(step: str, *args: Any) -> Step:
    """A fact review publishes about a return, recorded as intake's reaction records it."""

    def send(r: RefundRequest) -> None:
        review = Review(r)
        review.send(getattr(review, step)(*args))

    return send


def _open_review(r: RefundRequest) -> None:
    r.record_review_opened(
        tier="junior", rule="manual", deadline=None, opened_at=NOW, causation_id="c-open"
    )


def _request_evidence(r: RefundRequest) -> None:
    r.record_evidence_request(
        missing=["photo"], message="a photo", requested_by="staff:a", requested_at=NOW,
        causation_id="c-ask",
    )  # fmt: skip


def _add_evidence(r: RefundRequest) -> None:
    r.add_evidence(
        evidence=[{"kind": "photo", "url": "https://x.cn/1.jpg"}], note="", actor="t", at=NOW
    )


def _escalate(r: RefundRequest) -> None:
    r.record_escalation(tier="senior", escalated_by="staff:a", escalated_at=NOW, causation_id="e")


def _breach(r: RefundRequest) -> None:
    r.record_sla_breach(deadline=NOW, breached_at=NOW, causation_id="c-sla")


def _compensate(r: RefundRequest) -> None:
    r.record_compensation(
        coupon=r.amount, note="sorry", offered_by="staff:a", offered_at=NOW, causation_id="c-cp"
    )


def _fail_payout(r: RefundRequest) -> None:
    r.record_payout_failure(payout_id="po_1", cause="closed", failed_at=NOW, causation_id="c-f")


def _withdraw(r: RefundRequest) -> None:
    r.withdraw(reason="changed my mind", actor="tenant:acme", at=NOW)


def _appeal(r: RefundRequest) -> None:
    r.appeal(statement="it was broken", actor="tenant:acme", at=NOW)


def _confirm(r: RefundRequest) -> None:
    r.confirm_receipt(actor="tenant:acme", at=NOW)


# Each refund's life after its request, step by step; together they reach every status a
# refund can have.
LIVES: dict[str, list[Step]] = {
    "submitted": [],
    "in_review": [_open_review, _escalate, _breach],
    "awaiting_evidence": [_open_review, _request_evidence],
    "evidence_added": [_open_review, _request_evidence, _add_evidence],
    "approved": [approve],
    "rejected": [reject],
    "appealed": [reject, _appeal],
    "appealed_then_approved": [reject, _appeal, lambda r: approve(r, "c-approve-2")],
    "withdrawn": [_withdraw],
    "paid": [approve, pay],
    "payout_failed": [approve, _fail_payout],
    "closed_by_receipt": [approve, pay, _confirm],
    "closed_by_coupon": [_open_review, _compensate],
    "awaiting_return": [_review("requested"), _review("reminded")],
    "return_in_transit": [_review("requested"), ship],
    "return_delivered": [_review("requested"), ship, _review("delivered")],
    "return_received": [_review("requested"), ship, _review("delivered"), _review("received")],
    "inspection_to_a_person": [_review("requested"), ship, _review("received", "reviewer", 0)],
    "return_not_shipped": [_review("requested"), _review("missed", "ship_by")],
    "receipt_deadline_missed": [_review("requested"), ship, _review("missed", "receipt_by")],
    "exchange_ready": [_review("requested"), ship, _review("delivered"), _review("exchange")],
    "return_then_approved": [_review("requested"), ship, _review("received"), approve, pay],
}


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IntakeApplication]:
    options: dict[str, Any] = {"data_dir": tmp_path, "env": "dev"}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        url = request.getfixturevalue("postgres_url")
        options |= {"database_url": url, "database_schema": f"{prefix}_intake"}
    app = IntakeApplication(env=store_env(IntakeSettings(**options), "intake"))
    yield app
    app.close()


def replayed_rows(app: IntakeApplication, index: RefundIndex) -> dict[str, list[Any]]:
    """Each refund's row as `RefundIndex.row` makes it from the refund replayed."""
    refunds = (app.repository.get(n.originator_id) for n in refund_requests(app))
    return {str(r.id): list(index.row(r)) for r in refunds}


def refund_requests(app: IntakeApplication) -> list[Any]:
    requested = app.recorder.select_notifications(start=1, limit=1_000_000)
    return [n for n in requested if n.topic.endswith(":RefundRequest.Requested")]


def live(app: IntakeApplication, stepwise: bool) -> RefundIndex:
    """Every life stored; with `stepwise`, the index catches up after every step."""
    index = RefundIndex(app)
    refunds = {name: refund() for name in LIVES}
    app.save(*refunds.values())
    index.catch_up()
    for position in range(max(len(steps) for steps in LIVES.values())):
        for name, steps in LIVES.items():
            if position < len(steps):
                steps[position](refunds[name])
                app.save(refunds[name])
                if stepwise:
                    index.catch_up()
    index.catch_up()
    return index


def test_every_event_of_a_refund_is_known_to_the_rows() -> None:
    """A new kind of refund event needs its entry in FACTS (else the index reloads the
    refund at each such event): every kind stored, as tests/fixtures/event_versions.json
    records them."""
    stored = {topic.rpartition(".")[2] for topic in recorded() if ":RefundRequest." in topic}
    # eventsourcing's base classes of an aggregate's events: a refund begins `Requested`.
    assert stored - {"Event", "Created"} == {*FACTS, "Requested"}


@pytest.mark.parametrize("stepwise", [False, True], ids=["one batch", "event by event"])
@pytest.mark.parametrize("kept", [10_000, 1], ids=["kept", "forgotten"])
def test_rows_are_the_replayed_ones_in_every_status(
    app: IntakeApplication, monkeypatch: pytest.MonkeyPatch, stepwise: bool, kept: int
) -> None:
    monkeypatch.setattr("services.intake.index.KEPT_AGGREGATES", kept)
    index = live(app, stepwise)
    rows = index.all_rows()
    assert rows == replayed_rows(app, index)
    statuses = {row[5] for row in rows.values()}
    derivable = set(typing.get_args(Status)) - {"paying", ReturnStatus} | set(
        typing.get_args(ReturnStatus)
    )
    assert statuses == derivable  # every status a refund can reach, each checked
    fresh = RefundIndex.scratch(app, "check")
    try:
        fresh.rebuild()
        assert fresh.all_rows() == rows
    finally:
        fresh.drop()


def test_an_event_the_rows_do_not_know_reloads_the_refund(
    app: IntakeApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Any] = []
    get = app.repository.get
    monkeypatch.setattr(app.repository, "get", lambda *a, **k: loads.append(a) or get(*a, **k))
    monkeypatch.delitem(FACTS, "Approved")
    index = live(app, stepwise=True)
    assert index.all_rows() == replayed_rows(app, index)
    approvals = sum("approve" in getattr(s, "__name__", "") for v in LIVES.values() for s in v)
    assert len(loads) >= approvals > 0  # each unknown event loaded its refund


def request_versions(store: Path) -> set[int]:
    """The class versions of the `Requested` events in an intake store."""
    with sqlite3.connect(store) as db:
        states = db.execute(
            "SELECT state FROM stored_events WHERE topic LIKE '%:RefundRequest.Requested'"
        ).fetchall()
    return {json.loads(state).get("class_version", 1) for (state,) in states}


def test_the_frozen_stores_hold_every_version_of_a_request() -> None:
    """So the test below reads requests of every class version, the first one's too."""
    stored = set().union(*(request_versions(STORES / r / "intake.sqlite") for r in RELEASES))
    assert stored == set(range(1, RefundRequest.Requested.class_version + 1))


@pytest.mark.parametrize("release", RELEASES)
def test_a_frozen_release_s_store_lists_as_replayed(tmp_path: Path, release: str) -> None:
    """Every release's stored refund events, of every class version it stored, list as a
    replay of the refunds (through today's upcasters) does."""
    copy = tmp_path / "intake.sqlite"
    shutil.copy(STORES / release / "intake.sqlite", copy)
    app = IntakeApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(copy)}
    )
    try:
        fresh = RefundIndex.scratch(app, "frozen")
        fresh.rebuild()
        rows = fresh.all_rows()
        assert rows == replayed_rows(app, fresh)
        assert len(rows) == len(refund_requests(app)) > 0
    finally:
        app.close()
