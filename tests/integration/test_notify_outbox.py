"""The senders' outbox and the webhook schedule start from their checkpoints: a start reads
only what was logged after it, however long the history, and still knows every open message
or pending delivery and every attempt claimed without an outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.notify.application import NotifyApplication
from services.notify.messages.domain import Correspondence
from services.notify.messages.outbox import Outbox, _Seen
from services.notify.settings import NotifySettings
from services.notify.webhooks.deliverer import DueSchedule
from services.notify.webhooks.deliveries import WebhookDelivery
from shared.keystore import open_keystore
from shared.store import store_env
from tests.support.notify import notify_app
from tests.support.notify_sender import approved, cloud, new_refund_id, requested
from tests.support.reads import Reads

SOON = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyApplication]:
    if request.param == "sqlite":
        application = notify_app(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        schema = f"{request.getfixturevalue('schema_prefix')}_notify"
        settings = NotifySettings(database_url=url, database_schema=schema, data_dir=tmp_path)
        application = NotifyApplication(env=store_env(settings, "notify"))
        application.keystore = open_keystore(settings, "notify")
    yield application
    application.close()


def send_all(app: NotifyApplication, cids: list[uuid.UUID]) -> None:
    """What a sender stores for each e-mail: its claim, then that it was sent."""
    for cid in cids:
        (due,) = app.messages.correspondence(cid).pending(channels=("email",))
        assert app.messages.start_attempts([cid], [(due.step, "t")], "email") == [1]
        app.messages.record_outcomes(
            [
                (
                    cid,
                    lambda c, step=due.step: c.record_sent(
                        step=step,
                        channel="email",
                        message_id="m",
                        recipient_masked="l***@example.com",
                        locale="en",
                        template="t",
                        sent_at=SOON,
                    ),
                )
            ]
        )


def test_a_start_reads_only_what_came_after_the_checkpoint(app: NotifyApplication) -> None:
    refunds = [new_refund_id() for _ in range(40)]
    for n, refund in enumerate(refunds, start=1):
        assert app.handle(cloud(requested(refund), "intake", n))
    first = Outbox(app, "email")
    assert first.scan() == []
    assert len(first.due) == 40
    send_all(app, list(first.due))
    first.follow()
    first.save()
    assert first.seen == {}  # all sent: nothing of them is kept

    reads = Reads(app)
    restarted = Outbox(app, "email")
    assert restarted.scan() == [] and restarted.due == {}
    assert reads.events == 0  # the history is not read again

    late = new_refund_id()
    assert app.handle(cloud(requested(late), "intake", 41))
    reads.events = 0
    again = Outbox(app, "email")
    assert again.scan() == []
    assert list(again.due) == [Correspondence.create_id(late)]
    assert reads.events <= 4  # the new refund's events only


def test_a_claim_before_the_checkpoint_is_still_found_without_its_outcome(
    app: NotifyApplication,
) -> None:
    refund = new_refund_id()
    assert app.handle(cloud(requested(refund), "intake", 1))
    cid = Correspondence.create_id(refund)
    outbox = Outbox(app, "email")
    outbox.scan()
    assert app.messages.start_attempts([cid], [("received", "t")], "email") == [1]
    outbox.follow()
    outbox.save()  # the claim is before the checkpoint; the sender dies before the outcome

    restarted = Outbox(app, "email")
    assert restarted.scan() == [(cid, "received")]  # to be marked uncertain, never resent
    assert restarted.due == {}


def test_a_retry_time_and_a_new_step_of_a_finished_correspondence_survive_a_restart(
    app: NotifyApplication,
) -> None:
    waiting, finished = new_refund_id(), new_refund_id()
    assert app.handle(cloud(requested(waiting), "intake", 1))
    assert app.handle(cloud(requested(finished), "intake", 2))
    waiting_id, finished_id = map(Correspondence.create_id, (waiting, finished))
    outbox = Outbox(app, "email")
    outbox.scan()
    retry_at = SOON + timedelta(minutes=5)
    app.messages.record_outcomes(
        [
            (
                waiting_id,
                lambda c: c.record_attempt_failed(
                    step="received", channel="email", error="421", retry_at=retry_at
                ),
            )
        ]
    )
    send_all(app, [finished_id])
    outbox.follow()
    outbox.save()
    assert set(outbox.seen) == {waiting_id}  # the finished one is forgotten
    assert app.handle(cloud(approved(finished), "review", 1))  # ... until it has a new step

    restarted = Outbox(app, "email")
    assert restarted.scan() == []
    assert restarted.due == {waiting_id: retry_at, finished_id: None}
    restarted.settle(app.messages.correspondence(finished_id))  # what the sender does
    assert restarted.seen[finished_id].open_steps() == ["approved"]
    assert not restarted.seen[finished_id].partial


def test_a_correspondence_without_an_address_on_the_channel_is_not_kept(
    app: NotifyApplication,
) -> None:
    refund = new_refund_id()
    assert app.handle(cloud(requested(refund, email=None, phone="+8613812345678"), "intake", 1))
    cid = Correspondence.create_id(refund)
    email, sms = Outbox(app, "email"), Outbox(app, "sms")
    assert email.scan() == [] and sms.scan() == []
    assert list(sms.seen) == list(sms.due) == [cid]
    assert email.seen == {} and email.due == {}
    # A later step of a forgotten correspondence: the e-mail sender looks once ...
    assert app.handle(cloud(approved(refund), "review", 1))
    email.follow()
    assert email.due == {cid: None} and email.seen[cid].partial
    email.settle(app.messages.correspondence(cid))
    assert email.seen == {}  # ... and forgets it
    email.save()
    assert Outbox(app, "email").scan() == [] and email.checkpoints.load()[1] == {}


def requested_and_approved_all_sent(app: NotifyApplication) -> uuid.UUID:
    """A refund requested, then approved, each step's e-mail sent before the next: its
    correspondence's id."""
    refund = new_refund_id()
    assert app.handle(cloud(requested(refund), "intake", 1))
    cid = Correspondence.create_id(refund)
    send_all(app, [cid])
    assert app.handle(cloud(approved(refund), "review", 1))
    send_all(app, [cid])
    return cid


def test_a_read_of_the_whole_log_keeps_no_correspondence_whose_messages_are_all_sent(
    app: NotifyApplication,
) -> None:
    """Read from the log's beginning (a first start; the history seeder), a correspondence
    is forgotten once its first step's messages are sent, so its next step starts a partial
    entry. Once that step is sent too, nothing is left to look at: kept, every such entry
    was loaded by the sender at the next start (20,000 of 100,000 seeded refunds, minutes of
    work on PostgreSQL before notify sent anything new)."""
    requested_and_approved_all_sent(app)

    outbox = Outbox(app, "email")  # no checkpoint yet: the whole log is read
    assert outbox.scan() == []
    assert outbox.seen == {} and outbox.due == {}


def test_a_finished_entry_an_earlier_release_checkpointed_is_dropped_at_start(
    app: NotifyApplication,
) -> None:
    cid = requested_and_approved_all_sent(app)
    steps = list(app.messages.correspondence(cid).scheduled)
    # What an earlier release's fold saved for it: a partial entry with every step closed.
    kept = _Seen(steps=steps, closed=set(steps), partial=True).to_json()
    Outbox(app, "email").checkpoints.save(app.recorder.max_notification_id(), {str(cid): kept})

    restarted = Outbox(app, "email")
    assert restarted.scan() == []
    assert restarted.seen == {} and restarted.due == {}  # the sender loads nothing for it
    restarted.save()
    assert restarted.checkpoints.load()[1] == {}


def test_the_webhook_schedule_starts_from_its_checkpoint_and_still_finds_started_attempts(
    app: NotifyApplication,
) -> None:
    app.webhooks.allow_private = True
    endpoint, _ = app.webhooks.register_endpoint(
        tenant="acme", url="http://127.0.0.1:9/hook", event_types=["*"], actor="tenant:acme"
    )
    messages = [cloud(requested(new_refund_id()), "intake", n) for n in range(1, 4)]
    for message in messages:
        assert app.handle(message)
    delivery_ids = [WebhookDelivery.create_id(endpoint.id, m.id) for m in messages]
    schedule = DueSchedule(app)
    assert schedule.catch_up() >= 3
    assert set(schedule.due) == set(delivery_ids)
    claimed = app.webhook_deliveries.claim_attempt(delivery_ids[0])
    assert claimed is not None  # ... and the deliverer dies before its outcome
    schedule.catch_up()
    schedule.save()

    reads = Reads(app)
    restarted = DueSchedule(app)
    assert restarted.catch_up() == 0 and reads.events == 0  # the history is not read again
    assert restarted.started == {delivery_ids[0]}  # to be marked uncertain, never resent
    assert set(restarted.due) == set(delivery_ids[1:])
    assert restarted.due == {d: schedule.due[d] for d in delivery_ids[1:]}
