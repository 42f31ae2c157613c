"""Review's SLA clock and return watch start from their checkpoints: a start reads the set
saved then and only the log after it, however long the history, and knows the same cases as
a read of the whole log (issue 20: no loop reads more than what is new since its position)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.returns.workers import ReturnWatch
from services.review.settings import ReviewSettings
from services.review.sla import RunningClocks, tick_due
from services.review.sla_metrics import BREACHES, BreachCount
from shared.contracts import RefundWithdrawnV1
from shared.store import store_env
from tests.integration.test_review_sla import THURSDAY, Clock, deliver, over_limit_request
from tests.support.reads import Reads


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        settings = ReviewSettings(data_dir=tmp_path)
    else:
        settings = ReviewSettings(
            database_url=request.getfixturevalue("postgres_url"),
            database_schema=f"{request.getfixturevalue('schema_prefix')}_review",
            data_dir=tmp_path,
        )
    return store_env(settings, "review")


@pytest.fixture
def review(env: dict[str, str]) -> Iterator[ReviewApplication]:
    app = ReviewApplication(default_policy(), env=env, clock=Clock(THURSDAY))
    yield app
    app.close()


def withdraw(app: ReviewApplication, refund_id: str) -> None:
    withdrawn = RefundWithdrawnV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1",
        reason="",
        actor="customer",
        withdrawn_at=THURSDAY,
    )
    deliver(app, withdrawn)  # type: ignore[arg-type]


def test_the_sla_clock_starts_from_its_checkpoint(review: ReviewApplication) -> None:
    refunds = [f"rf_cp{n}" for n in range(30)]
    for refund in refunds:
        deliver(review, over_limit_request(refund))
    withdraw(review, refunds[0])
    first = RunningClocks(review)
    running = set(first.catch_up())
    assert len(running) == 29  # the withdrawn case's clock stopped
    first.save()

    reads = Reads(review)
    restarted = RunningClocks(review)
    assert restarted.catch_up() == running
    assert reads.events == 0  # the history is not read again

    withdraw(review, refunds[1])
    deliver(review, over_limit_request("rf_cp_late"))
    reads.events = 0
    again = RunningClocks(review)
    found = again.catch_up()
    assert reads.events <= 6  # the withdrawal's and the new case's events only
    late = review.case_for("rf_cp_late")
    gone = review.case_for(refunds[1])
    assert late is not None and gone is not None
    assert late.id in found and gone.id not in found
    assert found == (running - {gone.id}) | {late.id}


def test_a_start_without_a_checkpoint_reads_the_whole_log_and_knows_the_same(
    review: ReviewApplication,
) -> None:
    for n in range(5):
        deliver(review, over_limit_request(f"rf_nocp{n}"))
    withdraw(review, "rf_nocp0")
    # The clocks as a full read finds them, never saved.
    fresh = RunningClocks(review)
    reads = Reads(review)
    found = set(fresh.catch_up())
    assert reads.events > 5 and len(found) == 4
    fresh.save()
    reads.events = 0
    assert RunningClocks(review).catch_up() == found and reads.events == 0


def test_each_return_worker_keeps_its_own_checkpoint(review: ReviewApplication) -> None:
    deliver(review, over_limit_request("rf_rw"))  # a log to read past
    deadlines, poller = (
        ReturnWatch(review, "return_deadlines"),
        ReturnWatch(review, "carrier_poller"),
    )
    deadlines.catch_up()
    poller.catch_up()
    polled = poller.checkpoints.load()
    assert polled[0] == poller.position > 0  # the first checkpoint is saved at once
    deliver(review, over_limit_request("rf_rw2"))  # more log, read by one worker only
    deadlines.catch_up()
    deadlines.save()
    assert deadlines.checkpoints.load()[0] == deadlines.position > poller.position
    assert poller.checkpoints.load() == polled  # its own, apart


def test_the_breach_count_starts_from_its_checkpoint(env: dict[str, str]) -> None:
    clock = Clock(THURSDAY)
    app = ReviewApplication(default_policy(), env=env, clock=clock)
    try:
        for n in range(3):
            deliver(app, over_limit_request(f"rf_breach{n}"))
        clock.now = THURSDAY + timedelta(days=2)  # past every deadline
        assert tick_due(app, RunningClocks(app)) == 3
        first = BreachCount(app)
        assert first.catch_up() == 3
        first.save()
        checkpointed = int(app.recorder.max_notification_id() or 0)

        reads = Reads(app)
        assert BreachCount(app).catch_up() == 3 and reads.events == 0
        deliver(app, over_limit_request("rf_breach_late"))
        clock.now = THURSDAY + timedelta(days=8)  # past the late one's deadline too
        assert tick_due(app, RunningClocks(app)) >= 1
        stored = app.recorder.select_notifications(start=1, limit=10_000)
        breaches = sum(BREACHES in n.topic for n in stored)
        assert breaches > 3
        reads.events = 0
        assert BreachCount(app).catch_up() == breaches
        # Only what was stored after the checkpoint is read (the log's tail, in one query).
        assert reads.events == sum(n.id > checkpointed for n in stored)
        assert sum(BREACHES in n.topic for n in stored if n.id > checkpointed) == breaches - 3
    finally:
        app.close()
