"""What notify's store does per refund: 20 refunds' upstream events (requested, approved, paid;
e-mail, SMS and in-app each) handled and sent by the e-mail and SMS senders against the mail
sink and the SMS sandbox. Each message loaded, claimed and recorded on its own took 12
commits per refund; the senders' rounds store a round's claims in one commit and its
outcomes in another."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.mailsink import MailSink
from sandbox.sms import SmsSandbox
from services.notify.application import NotifyApplication
from services.notify.messages.channels import SmsChannel
from services.notify.messages.sms import HttpSmsProvider
from tests.support.notify import notify_app
from tests.support.notify_sender import (
    PHONE,
    approved,
    cloud,
    email,
    feed,
    new_refund_id,
    paid,
    requested,
    running,
    until,
)

REFUNDS = 20


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    application = notify_app(tmp_path)
    yield application
    application.close()


def count_transactions(target: Any, name: str, counts: Counter[str]) -> None:
    original: Callable[..., Any] = target.transaction

    def transaction(*args: Any, **kwargs: Any) -> Any:
        counts[f"{name} transactions"] += 1
        if kwargs.get("commit"):
            counts[f"{name} commits"] += 1
        return original(*args, **kwargs)

    target.transaction = transaction


async def test_a_refund_costs_notify_a_few_commits(app: NotifyApplication, tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    count_transactions(app.recorder.datastore, "store", counts)  # type: ignore[attr-defined]
    count_transactions(app.keys._table, "keystore", counts)
    refunds = [new_refund_id() for _ in range(REFUNDS)]
    for n, refund in enumerate(refunds, start=1):
        await feed(
            app,
            cloud(requested(refund, phone=PHONE), "intake", n),
            cloud(approved(refund), "review", n),
            cloud(paid(refund), "payout", n),
        )
    handled, sealed = counts["store commits"], counts["keystore transactions"]
    assert handled <= 3 * REFUNDS + 1  # one per upstream event: the reaction with its tracking

    with MailSink() as sink, SmsSandbox(tmp_path / "sms") as provider:
        sms = SmsChannel(HttpSmsProvider(provider.url))
        async with running(app, email(sink)) as mails, running(app, sms) as texts:
            await until(lambda: mails.sent == texts.sent == 3 * REFUNDS, "all sent")
            await asyncio.sleep(0)
        assert len(sink.messages) == len(provider.messages()) == 3 * REFUNDS

    # Per refund 6 messages: a claim and an outcome commit per e-mail and an outcome commit
    # per SMS were 9 commits (12 with the reactions); the rounds (4 e-mails or 32 SMS here)
    # and the outbox's checkpoints take 2 or so.
    sending = counts["store commits"] - handled
    assert sending <= 2.5 * REFUNDS, counts
    assert counts["store commits"] <= 6 * REFUNDS, counts
    # A customer's key is looked up in the store once per round, not once per message (6).
    assert counts["keystore transactions"] - sealed <= 2 * REFUNDS, counts
