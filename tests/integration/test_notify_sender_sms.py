"""Integration tests of notify's SMS through a real HTTP provider (the sandbox): a text
goes once even when its record is lost, and an outage's Retry-After is honoured."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.sms import SmsSandbox
from services.notify.application import NotifyApplication
from services.notify.messages.channels import Outgoing, SmsChannel
from services.notify.messages.domain import Correspondence
from services.notify.messages.sender import Sender
from services.notify.messages.sms import HttpSmsProvider
from services.notify.messages.steps import notification_id
from tests.support.notify_sender import (
    PHONE,
    WAIT,
    Died,
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    cloud,
    feed,
    new_refund_id,
    requested,
    running,
    statuses,
    until,
)


async def test_sms_goes_to_the_phone_once_even_when_the_record_is_lost(
    app: NotifyApplication, tmp_path: Path
) -> None:
    """No claim for SMS: a repeat carries the same idempotency key, and the provider keeps
    it, so a crash between sending and recording cannot make a second text."""
    refund = new_refund_id()
    await feed(
        app,
        cloud(requested(refund, email=None, phone=PHONE, locale="en"), "intake", 1),
        cloud(approved(refund), "review", 1),
    )
    with SmsSandbox(tmp_path / "sms") as provider:

        class DiesAfterSending(SmsChannel):
            def send(self, outgoing: Outgoing) -> str:
                super().send(outgoing)
                raise Died("killed after the provider accepted the text")

        crashing = Sender(app, DiesAfterSending(HttpSmsProvider(provider.url)))
        task = asyncio.create_task(crashing.run(asyncio.Event()))
        with pytest.raises(Died):
            await asyncio.wait_for(task, WAIT)
        assert len(provider.messages()) == 1

        async with running(app, SmsChannel(HttpSmsProvider(provider.url))) as sender:
            await until(lambda: sender.sent == 2, "both recorded")
        texts = provider.messages(to=PHONE)

    assert len(texts) == 2  # received and approved: one each, not three
    assert {t["idempotency_key"] for t in texts} == {
        notification_id(refund, "received", "sms"),
        notification_id(refund, "approved", "sms"),
    }
    assert any("CNY 129.00" in t["text"] for t in texts)
    assert statuses(app, refund, "sms") == {"received": "sent", "approved": "sent"}
    assert statuses(app, refund, "email") == {}  # no address, no e-mail
    (entry,) = [
        n
        for n in app.messages.notifications_for(refund)
        if n["channel"] == "sms" and n["step"] == "approved"
    ]
    assert entry["recipient"] != PHONE and entry["recipient"].endswith("5678")
    assert entry["template"] == "approved.sms.en@1"


async def test_an_sms_outage_honours_retry_after_then_delivers(
    app: NotifyApplication, tmp_path: Path
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund, email=None, phone=PHONE), "intake", 1))
    with SmsSandbox(tmp_path / "sms") as provider:
        provider.control(fail_next=1, status=503, retry_after=1)
        async with running(app, SmsChannel(HttpSmsProvider(provider.url))) as sender:
            await until(lambda: sender.sent == 1, "delivered")
        texts = provider.messages()

    assert len(texts) == 1
    stored = app.events.get(Correspondence.create_id(refund))
    (failure,) = [e for e in stored if isinstance(e, Correspondence.AttemptFailed)]
    assert (failure.retry_at - failure.timestamp).total_seconds() >= 0.99  # Retry-After: 1
    assert "503" in failure.error
