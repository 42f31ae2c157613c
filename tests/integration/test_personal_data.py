"""Personal data end to end on PostgreSQL: sealed before it is stored in intake, review and
notify, opened only for the tenant, the sender and the feed; erased by an admin, after which
it is unreadable everywhere while amounts and decisions stay, and nothing more is sent."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.mailsink import MailSink
from services.intake.publishing import to_integration as intake_events
from services.notify.application import NotifyApplication
from services.notify.bootstrap import http_api as notify_http
from services.notify.messages.channels import EmailChannel
from services.notify.messages.domain import Correspondence
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.messages.steps import CUSTOMER_ERASED
from services.notify.settings import NotifySettings
from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.publishing import to_integration as review_events
from shared.application import ServiceApplication
from shared.auth import ApiKeys, parse_api_keys
from shared.contracts import CloudEvent, MoneyModel, PayoutSucceededV1, envelope
from shared.keystore import ERASED, PREFIX, open_keystore
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from shared.store import store_env
from tests.support.factories import refund_body
from tests.support.intake import ACME, ACME_KEY, Intake, serve_intake

pytestmark = pytest.mark.timeout(120)
NOW = datetime.now(UTC)


def staff(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims('ann', roles, 600), DEV_JWT_SECRET)}"}


@dataclass
class Customer:
    """A customer whose every personal text is unique, so that a grep finds only them."""

    customer_id: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    phone: str = field(default_factory=lambda: f"+86139{random.randrange(10**8):08d}")

    @property
    def texts(self) -> dict[str, str]:
        return {
            "name": f"Li Wei {self.tag}",
            "email": f"li.wei.{self.tag}@example.com",
            "phone": self.phone,
            "address": f"{self.tag} Nanjing Road, Shanghai",
            "description": f"Stain on the front ({self.tag})",
            "evidence": f"close-up of the stain ({self.tag})",
            "note": f"the box was crushed too ({self.tag})",
        }

    def request(self) -> dict[str, Any]:
        body = refund_body()
        body["order"]["customer_id"] = self.customer_id
        body["description"] = self.texts["description"]
        body["evidence"] = [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}]
        body["customer"] = {
            "name": self.texts["name"],
            "email": self.texts["email"],
            "phone": self.phone,
            "address": self.texts["address"],
            "locale": "en",
        }
        return body


@dataclass
class World:
    """Intake over HTTP, review and notify on their own schemas, events carried between them
    as relay and consumer would (in log order, with their positions)."""

    intake: Intake
    review: ReviewApplication
    notify: NotifyApplication
    notify_http: httpx.AsyncClient
    schema_prefix: str
    postgres_url: str
    carried: dict[str, int] = field(default_factory=lambda: {"intake": 0, "review": 0})

    def carry(self) -> list[CloudEvent]:
        """Everything published since the last call, applied downstream; intake's returned."""
        published = []
        moved = True
        while moved:
            from_intake = self._carry(
                "intake", self.intake.app, intake_events, [self.review, self.notify]
            )
            from_review = self._carry(
                "review", self.review, review_events, [self.intake.app, self.notify]
            )
            published += from_intake
            moved = bool(from_intake or from_review)
        return published

    def _carry(
        self,
        source: str,
        origin: ServiceApplication,
        publish: Callable[[Any], Any],
        targets: list[ServiceApplication],
    ) -> list[CloudEvent]:
        sent = []
        notifications = origin.recorder.select_notifications(
            start=self.carried[source], limit=1000, inclusive_of_start=False
        )
        for notification in notifications:
            integration = publish(origin.mapper.to_domain_event(notification))
            self.carried[source] = notification.id
            if integration is None:
                continue
            message = envelope(
                integration,
                source=source,
                event_id=str(uuid.uuid4()),
                position=notification.id,
                time=NOW,
                causation_id=None,
            )
            for target in targets:
                target.handle(message)
            sent.append(message)
        return sent

    def stored_text(self) -> str:
        """Every row of every table of intake, review and notify, as text."""
        found = []
        with psycopg.connect(self.postgres_url) as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = ANY(%s)",
                ([f"{self.schema_prefix}_{s}" for s in ("intake", "review", "notify")],),
            ).fetchall()
            assert len(tables) >= 9, tables  # events, tracking, read models, … of three
            for schema, table in tables:
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # noqa: S608
                found += [_text(value) for row in rows for value in row]
        return "\n".join(found)


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@pytest.fixture
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, schema_prefix: str, postgres_url: str
) -> AsyncIterator[World]:
    def settings(service: str) -> ServiceSettings:
        return ServiceSettings(
            database_url=postgres_url, database_schema=f"{schema_prefix}_{service}"
        )

    notify_settings = NotifySettings(
        database_url=postgres_url, database_schema=f"{schema_prefix}_notify"
    )
    review = ReviewApplication(default_policy(), env=store_env(settings("review"), "review"))
    review.record_shipped_policy()
    notify = NotifyApplication(env=store_env(notify_settings, "notify"))
    notify.keystore = open_keystore(notify_settings, "notify")
    keys = ApiKeys(parse_api_keys(f"acme:{ACME_KEY}"))
    http = notify_http(notify, keys, StaffAuth(DEV_JWT_SECRET), CustomerFeed(notify))
    transport = httpx.ASGITransport(app=http)
    with serve_intake(request, tmp_path, "postgres") as intake:
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
            yield World(intake, review, notify, client, schema_prefix, postgres_url)
    review.close()
    notify.close()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


def personal(view: dict[str, Any]) -> dict[str, Any]:
    """What of a refund view is the customer's personal data."""
    return {
        "customer": view["customer"],
        "description": view["description"],
        "evidence": [e.get("description") for e in view["evidence"]],
    }


def impersonal(view: dict[str, Any]) -> dict[str, Any]:
    """Everything else, which erasure must leave as it was."""
    return {
        k: v
        for k, v in view.items()
        if k not in ("customer", "description", "evidence", "personal_data")
    }


async def send_emails(notify: NotifyApplication, sink: MailSink, until: Callable[[], bool]) -> None:
    sender = Sender(
        notify, EmailChannel(SmtpMailer(sink.host, sink.port, "r@localhost"), "r@localhost")
    )
    sender.wait = sender.batch_seconds = 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        for _ in range(200):
            if until():
                break
            await asyncio.sleep(0.05)
        assert until(), "the sender did not get there"
    finally:
        stop.set()
        await task


def email_statuses(notify: NotifyApplication, refund_id: str) -> dict[str, tuple[str, Any]]:
    return {
        n["step"]: (n["status"], n["last_error"])
        for n in notify.messages.notifications_for(refund_id)
        if n["channel"] == "email"
    }


async def test_personal_data_is_sealed_everywhere_and_erasure_shreds_it(
    world: World, sink: MailSink
) -> None:
    erased, kept = Customer(f"C-{uuid.uuid4().hex[:8]}"), Customer(f"C-{uuid.uuid4().hex[:8]}")
    client = world.intake.client

    # -- recorded sealed, shown in plaintext to the tenant ------------------------------------
    refunds = {}
    for customer in (erased, kept):
        created = world.intake.create(customer.request())
        texts = customer.texts
        assert created["customer"]["email"] == texts["email"]
        assert created["customer"]["name"] == texts["name"]
        added = client.post(
            f"/v1/refunds/{created['id']}/evidence",
            json={
                "evidence": [
                    {
                        "kind": "photo",
                        "url": "https://cdn.example.com/p/2.jpg",
                        "description": texts["evidence"],
                    }
                ],
                "note": texts["note"],
            },
            headers=ACME,
        )
        assert added.status_code == 200, added.text
        refunds[customer.customer_id] = created["id"]
    published = world.carry()
    ours = refunds[erased.customer_id]
    before = client.get(f"/v1/refunds/{ours}", headers=ACME).json()
    assert before["decision"] is not None, "review decided and intake recorded it"
    assert before["personal_data"] == "available"
    assert personal(before) == {
        "customer": {
            "name": erased.texts["name"],
            "email": erased.texts["email"],
            "phone": erased.phone,
            "address": erased.texts["address"],
            "locale": "en",
        },
        "description": erased.texts["description"],
        "evidence": ["", erased.texts["evidence"]],
    }
    events = client.get(f"/v1/refunds/{ours}/events", headers=ACME).json()["data"]
    assert erased.texts["note"] in [e["data"].get("note") for e in events]

    # -- nowhere in plaintext: not in any table, not on the topic -----------------------------
    stored = world.stored_text()
    assert PREFIX in stored
    for customer in (erased, kept):
        for name, text in customer.texts.items():
            assert text not in stored, f"{name} of {customer.customer_id} stored in plaintext"
    for message in published:
        for name, text in erased.texts.items():
            assert text.encode() not in message.to_bytes(), f"{name} on {message.type}"

    # -- the feed shows the in-app texts, opened ---------------------------------------------
    feed = await world.notify_http.get(
        f"/v1/customers/{erased.customer_id}/notifications", headers=ACME
    )
    assert feed.status_code == 200 and feed.json()["data"]
    assert all(item["body"] and item["body"] != ERASED for item in feed.json()["data"])
    assert not any(PREFIX in item["body"] for item in feed.json()["data"])

    # -- only an admin erases; only known customers ------------------------------------------
    erase = f"/v1/customers/{erased.customer_id}/erase"
    body = {"tenant": "acme", "reason": "customer request"}
    assert client.post(erase, json=body, headers=staff("reviewer")).status_code == 403
    assert client.post(erase, json=body).status_code == 401
    unknown = client.post("/v1/customers/C-nobody/erase", json=body, headers=staff("admin"))
    assert unknown.status_code == 404, unknown.text
    other_tenant = client.post(erase, json={"tenant": "globex"}, headers=staff("admin"))
    assert other_tenant.status_code == 404
    keyed = {**staff("admin"), "Idempotency-Key": "erase-1"}
    done = client.post(erase, json=body, headers=keyed)
    assert done.status_code == 200, done.text
    record = done.json()
    assert record["erased_by"] == "staff:ann" and record["refund_ids"] == [ours]
    assert record["keys_erased"] == 1 and record["id"].startswith("ce_")
    replay = client.post(erase, json=body, headers=keyed)
    assert replay.json() == record and replay.headers["Idempotent-Replayed"] == "true"
    assert client.post(erase, json={"tenant": "acme"}, headers=keyed).status_code == 409
    again = client.post(erase, json=body, headers=staff("admin"))
    assert again.status_code == 200 and again.json()["erasures"] == 1  # nothing new to record

    # -- unreadable, while amounts, decisions and the timeline stay ---------------------------
    after = client.get(f"/v1/refunds/{ours}", headers=ACME).json()
    assert after["personal_data"] == "erased"
    assert personal(after) == {
        "customer": {
            "name": ERASED,
            "email": ERASED,
            "phone": ERASED,
            "address": ERASED,
            "locale": "en",
        },
        "description": ERASED,
        "evidence": ["", ERASED],
    }
    assert impersonal(after) == impersonal(before)
    listed = client.get(f"/v1/refunds?customer_id={erased.customer_id}", headers=ACME).json()
    assert [r["customer"]["email"] for r in listed["data"]] == [ERASED]
    events = client.get(f"/v1/refunds/{ours}/events", headers=ACME).json()["data"]
    assert ERASED in [e["data"].get("note") for e in events]
    theirs = refunds[kept.customer_id]
    untouched = client.get(f"/v1/refunds/{theirs}", headers=ACME).json()
    assert untouched["customer"]["email"] == kept.texts["email"]
    assert untouched["personal_data"] == "available"

    # -- a pending e-mail to the erased customer is not sent; the other one is ----------------
    assert email_statuses(world.notify, ours)["received"][0] == "pending"
    await send_emails(
        world.notify,
        sink,
        lambda: all(s == "sent" for s, _ in email_statuses(world.notify, theirs).values()),
    )
    assert {s for s, _ in email_statuses(world.notify, ours).values()} == {"failed"}
    assert {e for _, e in email_statuses(world.notify, ours).values()} == {CUSTOMER_ERASED}
    recipients = {m["To"] for m in sink.messages}
    assert recipients == {kept.texts["email"]}

    # -- customer.erased.v1 reaches notify: nothing open is left for that customer -----------
    erasure_events = [m for m in world.carry() if m.type == "customer.erased.v1"]
    assert [m.data["refund_ids"] for m in erasure_events] == [[ours]]
    for event in erasure_events:
        for name, text in erased.texts.items():
            assert text.encode() not in event.to_bytes(), name
    correspondence = world.notify.messages.correspondence(Correspondence.create_id(ours))
    assert correspondence.pending() == []  # the SMS (no sender running) failed too
    sms = [n for n in world.notify.messages.notifications_for(ours) if n["channel"] == "sms"]
    assert sms and {(n["status"], n["last_error"]) for n in sms} == {("failed", CUSTOMER_ERASED)}

    # -- a later step for the erased customer is not posted in-app either ---------------------
    paid = PayoutSucceededV1(
        refund_id=ours,
        tenant="acme",
        payout_id="po_1",
        amount=MoneyModel.model_validate(before["amount"]),
        method="alipay",
        merchant_refund_no="MR-1",
        provider_reference="GW-1",
        paid_at=NOW,
        expected_arrival=NOW + timedelta(days=1),
    )
    assert world.notify.handle(
        envelope(
            paid,
            source="payout",
            event_id=str(uuid.uuid4()),
            position=1,
            time=NOW,
            causation_id=None,
        )
    )
    in_app = {
        n["step"]: n
        for n in world.notify.messages.notifications_for(ours)
        if n["channel"] == "in_app"
    }
    assert (in_app["paid"]["status"], in_app["paid"]["last_error"]) == ("failed", CUSTOMER_ERASED)

    # -- the feed: erased for them, readable for the other -----------------------------------
    feed = await world.notify_http.get(
        f"/v1/customers/{erased.customer_id}/notifications", headers=ACME
    )
    items = feed.json()["data"]
    assert items and {(i["title"], i["body"]) for i in items} == {(ERASED, ERASED)}
    theirs_feed = await world.notify_http.get(
        f"/v1/customers/{kept.customer_id}/notifications", headers=ACME
    )
    assert all(i["body"] not in ("", ERASED) for i in theirs_feed.json()["data"])

    # -- and still no plaintext anywhere ------------------------------------------------------
    stored = world.stored_text()
    for customer in (erased, kept):
        for name, text in customer.texts.items():
            assert text not in stored, f"{name} of {customer.customer_id} stored in plaintext"

    # -- a customer who comes back is readable again, under a new key -------------------------
    back = world.intake.create(erased.request())
    assert back["customer"]["email"] == erased.texts["email"]
    assert back["personal_data"] == "available"
    still = client.get(f"/v1/refunds/{ours}", headers=ACME).json()
    assert still["customer"]["email"] == ERASED


async def test_refund_requested_as_published_carries_no_plaintext_contact(world: World) -> None:
    customer = Customer(f"C-{uuid.uuid4().hex[:8]}")
    world.intake.create(customer.request())
    notification = world.intake.app.recorder.select_notifications(start=1, limit=10)
    requested = [intake_events(world.intake.app.mapper.to_domain_event(n)) for n in notification]
    [event] = [e for e in requested if e is not None and e.TYPE == "refund.requested.v1"]
    # Exactly as the relay puts it on the topic.
    raw = envelope(
        event, source="intake", event_id=str(uuid.uuid4()), position=1, time=NOW, causation_id=None
    ).to_bytes()
    for name, text in customer.texts.items():
        assert text.encode() not in raw, f"{name} published in plaintext"
    data = CloudEvent.from_bytes(raw).data
    assert data["customer"]["email"].startswith(PREFIX)
    assert data["customer"]["phone"].startswith(PREFIX)
    assert data["customer"]["locale"] == "en"
    assert set(data["customer"]) == {"email", "phone", "locale"}  # no name, no address
    # The subscriber that needs the address opens it through the keystore.
    opened = world.notify.keys.unseal(data["customer"]["email"], field="customer.email")
    assert opened == customer.texts["email"]
