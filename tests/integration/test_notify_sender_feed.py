"""Integration tests of what notify shows over HTTP: in-app messages in the platform's
customer feed, and sent messages published and listed for auditors in the delivery log."""

from __future__ import annotations

from datetime import timedelta

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.messages.application import to_integration
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import notification_id
from shared.contracts import NotificationSentV1
from tests.support.notify_sender import (
    ACME,
    GLOBEX,
    NOW,
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    case_opened,
    client,
    cloud,
    email,
    feed,
    mails,
    new_refund_id,
    requested,
    running,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    statuses,
    token,
    until,
)


async def test_in_app_messages_are_stored_with_the_step_and_shown_to_the_platform_only(
    app: NotifyApplication,
) -> None:
    refund, other = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(refund, locale="zh-CN"), "intake", 1),
        cloud(case_opened(refund), "review", 1, NOW + timedelta(minutes=1)),
        cloud(approved(refund), "review", 2, NOW + timedelta(minutes=2)),
        cloud(approved(refund), "review", 2, NOW + timedelta(minutes=2)),  # a duplicate
        cloud(requested(other, tenant="globex"), "intake", 2),
    )
    async with client(app) as http:
        page = await http.get("/v1/customers/C-42/notifications", headers=ACME)
        first = await http.get("/v1/customers/C-42/notifications?limit=2", headers=ACME)
        older = await http.get(
            "/v1/customers/C-42/notifications",
            params={"limit": 2, "starting_after": first.json()["data"][-1]["id"]},
            headers=ACME,
        )
        theirs = await http.get("/v1/customers/C-42/notifications", headers=GLOBEX)
        anonymous = await http.get("/v1/customers/C-42/notifications")

    assert page.status_code == 200
    items = page.json()["data"]
    assert [i["step"] for i in items] == ["approved", "in_review", "received"]  # newest first
    assert {i["refund_id"] for i in items} == {refund}
    approved_item = items[0]
    assert approved_item["id"] == notification_id(refund, "approved", "in_app")
    assert "¥129.00" in approved_item["title"] + approved_item["body"]
    assert approved_item["template"] == "approved.in_app.zh-CN@1"
    assert items[1]["body"] and "2026年11月6日" in items[1]["title"] + items[1]["body"]
    assert first.json()["has_more"] is True
    assert [i["step"] for i in older.json()["data"]] == ["received"]
    assert [i["refund_id"] for i in theirs.json()["data"]] == [other]
    assert anonymous.status_code == 401
    assert statuses(app, refund, "in_app") == {
        "received": "sent",
        "in_review": "sent",
        "approved": "sent",
    }


async def test_sent_messages_are_published_and_listed_for_auditors(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
    async with running(app, email(sink)) as sender:
        await mails(sink, 1)
        await until(lambda: sender.sent == 1, "recorded")

    stored = app.messages.correspondence(Correspondence.create_id(refund))
    published = [to_integration(e) for e in app.events.get(stored.id)]
    sent = {e.channel: e for e in published if isinstance(e, NotificationSentV1)}
    assert set(sent) == {"email", "in_app"}
    assert sent["email"].recipient == "l***@example.com"
    assert sent["email"].template == "received.email.en@1"
    assert sent["email"].notification_id.startswith("nt_")

    async with client(app) as http:
        listed = await http.get(
            "/v1/notifications", params={"refund_id": refund}, headers=token("auditor")
        )
        forbidden = await http.get(
            "/v1/notifications", params={"refund_id": refund}, headers=token("reviewer")
        )
        anonymous = await http.get("/v1/notifications", params={"refund_id": refund})
        malformed = await http.get(
            "/v1/notifications", params={"refund_id": "rf_nope"}, headers=token("admin")
        )

    assert listed.status_code == 200
    entries = {e["channel"]: e for e in listed.json()["data"]}
    assert entries["email"]["id"] == sent["email"].notification_id
    assert entries["email"]["recipient"] == "l***@example.com"
    assert entries["email"]["status"] == "sent" and entries["email"]["step"] == "received"
    assert forbidden.status_code == 403 and anonymous.status_code == 401
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["errors"][0]["field"] == "query.refund_id"
