"""Integration tests of platform webhooks: CloudEvents in, signed POSTs out to a real HTTP
receiver (verified with the independent `standardwebhooks` package), PostgreSQL store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as NotVerified

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.bootstrap import http_api
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import SmtpMailer
from services.notify.settings import NotifySettings
from services.notify.webhooks.deliverer import Deliverer
from shared.auth import ApiKeys, parse_api_keys
from shared.contracts import (
    EVENT_TYPES,
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    ReviewApprovedV1,
    envelope,
)
from shared.ids import public_id
from shared.keystore import open_keystore
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.staff_tokens import DEV_JWT_SECRET
from shared.store import store_env
from tests.support.receiver import Received, Receiver

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
CNY_129 = MoneyModel(amount=12900, currency="CNY")
ALIPAY = PaymentRoute(method="alipay", reference="2026110122001")
ACME = {"authorization": "Bearer sk_test_acme_0123456789"}
GLOBEX = {"authorization": "Bearer sk_test_globex_0123456789"}
KEYS = "acme:sk_test_acme_0123456789,globex:sk_test_globex_0123456789"
SHORT_SCHEDULE = ",".join(["0"] + ["0.2"] * 30)  # 31 attempts, 0.2 s apart


# --- upstream events ------------------------------------------------------------------------


def requested(refund_id: str) -> RefundRequestedV1:
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        customer_id="C-42",
        amount=CNY_129,
        paid=CNY_129,
        payment=ALIPAY,
        items=[RefundedItem(sku="TSHIRT-L-WHITE", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact.model_validate({"email": "li.wei@example.com", "locale": "en"}),
        requested_at=NOW,
    )


def approved(refund_id: str) -> ReviewApprovedV1:
    return ReviewApprovedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        amount=CNY_129,
        payment=ALIPAY,
        policy_version="2026.1",
        rule="R-DAMAGED-FULL",
        decided_by="policy",
        decided_at=NOW,
    )


def cloud(
    event: IntegrationEvent, source: str, position: int, event_id: str | None = None
) -> CloudEvent:
    return envelope(
        event,
        source=source,
        event_id=event_id or str(uuid.uuid4()),
        position=position,
        time=NOW,
        causation_id=None,
    )


def new_refund() -> str:
    return public_id("rf", uuid.uuid4())


# --- fixtures -------------------------------------------------------------------------------


class World:
    """The notify application on PostgreSQL, its webhook API, a receiver and a mail sink."""

    def __init__(self, settings: NotifySettings, receiver: Receiver, sink: MailSink) -> None:
        self.settings = settings
        self.receiver = receiver
        self.sink = sink
        self.app = NotifyApplication(env=store_env(settings, "notify"))
        self.app.keystore = open_keystore(settings, "notify")
        self.app.webhooks.allow_private = settings.webhook_allow_private
        keys = ApiKeys(parse_api_keys(KEYS))
        staff = StaffAuth(DEV_JWT_SECRET)
        http = http_api(self.app, keys, staff, CustomerFeed(self.app))
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=http), base_url="http://notify"
        )
        self.positions = 0

    def deliverer(self, verify: ssl.SSLContext | bool = True, **overrides: Any) -> Deliverer:
        settings = self.settings.model_copy(update=overrides)
        mailer = SmtpMailer(self.sink.host, self.sink.port, "refunds@localhost")
        return Deliverer(self.app, settings, mailer, verify=verify)

    @contextlib.asynccontextmanager
    async def delivering(
        self, verify: ssl.SSLContext | bool = True, **overrides: Any
    ) -> AsyncIterator[Deliverer]:
        deliverer = self.deliverer(verify, **overrides)
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        try:
            yield deliverer
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT)

    async def register(self, **body: Any) -> dict[str, Any]:
        body = {"url": self.receiver.url, "event_types": ["*"], **body}
        created = await self.client.post("/v1/webhook_endpoints", json=body, headers=ACME)
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        return answer

    async def feed(self, *messages: CloudEvent) -> list[bool]:
        return [await asyncio.to_thread(self.app.handle, message) for message in messages]

    async def event(self, refund: str | None = None) -> CloudEvent:
        """A fresh upstream event, consumed."""
        self.positions += 1
        message = cloud(requested(refund or new_refund()), "intake", self.positions)
        assert await self.feed(message) == [True]
        return message

    async def deliveries(self, endpoint_id: str, **params: Any) -> dict[str, Any]:
        listed = await self.client.get(
            f"/v1/webhook_endpoints/{endpoint_id}/deliveries", params=params, headers=ACME
        )
        assert listed.status_code == 200, listed.text
        page: dict[str, Any] = listed.json()
        return page

    async def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        found = await self.client.get(f"/v1/webhook_endpoints/{endpoint_id}", headers=ACME)
        assert found.status_code == 200, found.text
        view: dict[str, Any] = found.json()
        return view

    async def requests(self, count: int) -> list[Received]:
        return await asyncio.to_thread(self.receiver.wait_for, count, WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


@pytest.fixture
async def world(
    postgres_url: str, schema_prefix: str, receiver: Receiver, sink: MailSink
) -> AsyncIterator[World]:
    settings = load_settings(
        NotifySettings,
        database_url=postgres_url,
        database_schema=f"{schema_prefix}_notify",
        poll_interval_ms=10,
        smtp_port=sink.port,
        webhook_allow_private=True,
        webhook_retry_schedule=SHORT_SCHEDULE,
        webhook_timeout_ms=3000,
    )
    made = World(settings, receiver, sink)
    yield made
    await made.client.aclose()
    made.app.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():
            await asyncio.sleep(0.05)


def verify(secret: str, received: Received) -> dict[str, Any]:
    """Verify as a receiver would, with the reference implementation."""
    verified: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return verified


# --- delivery -------------------------------------------------------------------------------


async def test_an_event_is_delivered_once_signed_whatever_the_redeliveries(world: World) -> None:
    endpoint = await world.register(event_types=["refund.requested.v1"])
    refund = new_refund()
    message = cloud(requested(refund), "intake", 1)
    other_type = cloud(approved(refund), "review", 1)
    async with world.delivering():
        # Twice the same Kafka message, then re-published under a new position, and an event
        # of a type the endpoint did not subscribe to.
        assert await world.feed(message, message) == [True, False]
        again = message.model_copy(update={"position": 2})
        assert await world.feed(again, other_type) == [True, True]
        (received,) = await world.requests(1)
        await asyncio.sleep(0.5)  # anything more would arrive by now

    assert len(world.receiver.requests) == 1
    assert received.body == message.to_bytes()
    assert verify(endpoint["secret"], received)["id"] == message.id
    assert received.headers["webhook-id"].startswith("wd_")
    assert received.headers["content-type"] == "application/cloudevents+json"
    log = await world.deliveries(endpoint["id"])
    (delivery,) = log["data"]
    assert delivery["id"] == received.headers["webhook-id"]
    assert delivery["state"] == "delivered" and delivery["event_id"] == message.id
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
    assert attempt["latency_ms"] >= 0 and attempt["response_excerpt"] == '{"ok":true}'


async def test_a_receiver_down_then_up_gets_each_event_exactly_once(world: World) -> None:
    endpoint = await world.register()
    world.receiver.stop()
    first, second = await world.event(), await world.event()

    async def failed_twice() -> bool:
        log = await world.deliveries(endpoint["id"])
        return len(log["data"]) == 2 and all(len(d["attempts"]) >= 2 for d in log["data"])

    async with world.delivering():
        await eventually(failed_twice, "two failed attempts each")
        world.receiver.start()  # the same port again
        received = await world.requests(2)

        async def delivered() -> bool:
            log = await world.deliveries(endpoint["id"])
            return all(d["state"] == "delivered" for d in log["data"])

        await eventually(delivered, "both delivered")
        await asyncio.sleep(0.5)

    assert len(world.receiver.requests) == 2
    assert sorted(json.loads(r.body)["id"] for r in received) == sorted([first.id, second.id])
    for delivery in (await world.deliveries(endpoint["id"]))["data"]:
        *failures, success = delivery["attempts"]
        assert len(failures) >= 2
        assert all(a["outcome"] == "failed" and a["status_code"] is None for a in failures)
        assert all("ConnectError" in a["error"] and a["latency_ms"] >= 0 for a in failures)
        assert success["status_code"] == 200


async def test_a_500_is_retried_with_the_same_webhook_id(world: World) -> None:
    endpoint = await world.register()
    world.receiver.answer(500, 503)
    world.receiver.retry_after = "0"
    await world.event()
    async with world.delivering():
        received = await world.requests(3)

        async def delivered() -> bool:
            log = await world.deliveries(endpoint["id"])
            return log["data"][0]["state"] == "delivered"

        await eventually(delivered, "delivered on the third attempt")

    assert len({r.headers["webhook-id"] for r in received}) == 1
    for each in received:
        verify(endpoint["secret"], each)
    (delivery,) = (await world.deliveries(endpoint["id"]))["data"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]


async def test_410_disables_the_endpoint_and_nothing_more_is_sent(world: World) -> None:
    endpoint = await world.register()
    world.receiver.default_status = 410
    await world.event()
    second = await world.event()
    async with world.delivering(webhook_concurrency=1):
        await world.requests(1)

        async def gone() -> bool:
            view = await world.endpoint(endpoint["id"])
            return bool(view["disabled_reason"] == "gone")

        await eventually(gone, "disabled as gone")

        async def settled() -> bool:
            log = await world.deliveries(endpoint["id"])
            return all(d["state"] == "failed" for d in log["data"])

        await eventually(settled, "both deliveries failed")
        after = await world.event()  # a disabled endpoint gets no delivery at all
        await asyncio.sleep(0.5)

    assert len(world.receiver.requests) == 1
    view = await world.endpoint(endpoint["id"])
    assert view["status"] == "disabled"
    log = {d["event_id"]: d for d in (await world.deliveries(endpoint["id"]))["data"]}
    assert after.id not in log and len(log) == 2
    assert log[second.id]["attempts"] == [] and log[second.id]["reason"] == "endpoint gone"


async def test_an_endpoint_failing_too_long_is_disabled_and_its_tenant_told_once(
    world: World,
) -> None:
    endpoint = await world.register(alert_email="ops@acme.example")
    world.receiver.default_status = 500
    await world.event()
    async with world.delivering(webhook_disable_after_s=0.6):

        async def disabled() -> bool:
            view = await world.endpoint(endpoint["id"])
            return bool(view["disabled_reason"] == "failing")

        await eventually(disabled, "disabled for failing")
        (alert,) = await asyncio.to_thread(world.sink.wait_for, 1, WAIT)
        await world.event()  # nothing for a disabled endpoint
        await asyncio.sleep(0.6)
        tried = len(world.receiver.requests)
        await asyncio.sleep(0.5)

    assert len(world.receiver.requests) == tried >= 3
    assert len(world.sink.messages) == 1
    assert alert["To"] == "ops@acme.example"
    assert world.receiver.url in str(alert["Subject"])
    assert alert["X-Webhook-Endpoint"] == endpoint["id"]

    # Re-enabled, it gets deliveries again; and it may be told again if it fails again.
    world.receiver.default_status = 200
    enabled = await world.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}", json={"enabled": True}, headers=ACME
    )
    assert enabled.status_code == 200 and enabled.json()["status"] == "enabled"
    async with world.delivering():
        await world.event()
        await asyncio.to_thread(world.receiver.wait_for, tried + 1, WAIT)


async def test_an_endpoint_we_disable_is_announced_to_the_tenants_other_endpoints(
    world: World,
) -> None:
    broken = await world.register()  # every type, at world.receiver
    world.receiver.default_status = 410
    with Receiver() as ops_receiver, Receiver() as payouts_receiver:
        ops = await world.register(
            url=ops_receiver.url, event_types=["webhook.endpoint_disabled.v1"]
        )
        await world.register(url=payouts_receiver.url, event_types=["payout.succeeded.v1"])
        await world.event()
        async with world.delivering():
            (notice,) = await asyncio.to_thread(ops_receiver.wait_for, 1, WAIT)
            await asyncio.sleep(0.5)
        assert payouts_receiver.requests == []  # it did not ask for such news
        assert len(ops_receiver.requests) == 1

    event = verify(ops["secret"], notice)
    assert event["type"] == "webhook.endpoint_disabled.v1" and event["subject"] == broken["id"]
    assert event["tenant"] == "acme" and event["source"] == "notify"
    assert event["data"]["endpoint_id"] == broken["id"] and event["data"]["url"] == broken["url"]
    assert event["data"]["reason"] == "gone" and event["data"]["disabled_at"]
    (logged,) = (await world.deliveries(ops["id"]))["data"]
    assert logged["event_type"] == "webhook.endpoint_disabled.v1" and logged["refund_id"] is None
    assert logged["state"] == "delivered"
    assert len(world.receiver.requests) == 1  # the broken one was not told about itself


async def test_rotation_signs_with_both_secrets_until_the_overlap_expires(world: World) -> None:
    endpoint = await world.register()
    old = endpoint["secret"]
    async with world.delivering():
        await world.event()
        (before,) = await world.requests(1)
        rotated = await world.client.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
            json={"expire_previous_after_seconds": 2},
            headers=ACME,
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        await world.event()
        during = (await world.requests(2))[1]
        await asyncio.sleep(2.1)
        await world.event()
        after = (await world.requests(3))[2]

    verify(old, before)
    with pytest.raises(NotVerified):
        verify(new, before)
    verify(old, during)
    verify(new, during)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verify(new, after)
    with pytest.raises(NotVerified):
        verify(old, after)
    shown = await world.endpoint(endpoint["id"])
    assert "secret" not in shown and shown["previous_secret_expires_at"] is not None


async def test_manual_redelivery_sends_again_with_the_same_webhook_id(world: World) -> None:
    endpoint = await world.register()
    async with world.delivering():
        await world.event()
        (first,) = await world.requests(1)
        delivery_id = first.headers["webhook-id"]

        async def delivered() -> bool:
            log = await world.deliveries(endpoint["id"])
            return bool(log["data"][0]["state"] == "delivered")

        await eventually(delivered, "the first attempt recorded")
        path = f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/{delivery_id}/redeliver"
        queued = await world.client.post(path, headers={**ACME, "Idempotency-Key": "redo-1"})
        assert queued.status_code == 202, queued.text
        assert queued.json()["state"] == "pending"
        replayed = await world.client.post(path, headers={**ACME, "Idempotency-Key": "redo-1"})
        _, again = await world.requests(2)
        await asyncio.sleep(0.5)

    assert replayed.status_code == 202 and replayed.headers["idempotent-replayed"] == "true"
    assert len(world.receiver.requests) == 2  # the replayed request queued nothing more
    assert again.headers["webhook-id"] == delivery_id and again.body == first.body
    verify(endpoint["secret"], again)
    (delivery,) = (await world.deliveries(endpoint["id"]))["data"]
    assert [a["outcome"] for a in delivery["attempts"]] == ["succeeded", "succeeded"]


async def test_a_crash_between_send_and_record_leaves_it_uncertain_never_resent(
    world: World,
) -> None:
    endpoint = await world.register()
    world.receiver.held.clear()  # the receiver gets the POST but has not answered yet
    await world.event()
    crashing = world.deliverer()
    task = asyncio.create_task(crashing.run(asyncio.Event()))
    await world.requests(1)
    task.cancel()  # the process dies: no outcome is stored
    with contextlib.suppress(asyncio.CancelledError):
        await task
    world.receiver.held.set()
    (delivery,) = (await world.deliveries(endpoint["id"]))["data"]
    assert delivery["state"] == "pending" and delivery["attempts"][0]["outcome"] == "in_flight"

    async with world.delivering() as restarted:

        async def uncertain() -> bool:
            log = await world.deliveries(endpoint["id"])
            return bool(log["data"][0]["state"] == "uncertain")

        await eventually(uncertain, "marked uncertain")
        await asyncio.sleep(0.6)
        assert len(world.receiver.requests) == 1
        assert restarted.marked_uncertain == 1

        (delivery,) = (await world.deliveries(endpoint["id"], state="uncertain"))["data"]
        assert delivery["attempts"][0]["outcome"] == "uncertain"
        redo = await world.client.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/{delivery['id']}/redeliver",
            headers=ACME,
        )
        assert redo.status_code == 202
        first, second = await world.requests(2)

    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["id"]


async def test_a_claim_whose_answer_was_lost_is_settled_uncertain_without_a_restart(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection cut after the claim committed (the drills terminate PostgreSQL backends):
    the attempt is recorded but its sender never learns it. The running deliverer settles it
    as uncertain on its next look, instead of leaving it pending until a restart."""
    endpoint = await world.register()
    attempts = world.app.webhook_deliveries
    claim = attempts.claim_attempt

    def claim_then_lose_the_answer(delivery_id: Any) -> Any:
        claim(delivery_id)
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(attempts, "claim_attempt", claim_then_lose_the_answer)
    await world.event()
    async with world.delivering() as deliverer:

        async def uncertain() -> bool:
            log = await world.deliveries(endpoint["id"])
            return bool(log["data"] and log["data"][0]["state"] == "uncertain")

        await eventually(uncertain, "marked uncertain by the running deliverer")
        assert deliverer.marked_uncertain == 1
    assert world.receiver.requests == []  # claimed, never sent, and not sent again


async def test_an_outcome_whose_answer_was_lost_is_stored_once_and_the_attempt_ends(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcome committed but its answer was lost: the deliverer stores it again, finds it
    stored, and is done (before, it retried for ever, the delivery stuck in flight)."""
    endpoint = await world.register()
    attempts = world.app.webhook_deliveries
    settle = attempts.settle_attempt
    lost: list[str] = []

    def settle_then_lose_the_answer(*args: Any, **kwargs: Any) -> Any:
        settled = settle(*args, **kwargs)
        if not lost:
            lost.append("once")
            raise ConnectionError("server closed the connection unexpectedly")
        return settled

    monkeypatch.setattr(attempts, "settle_attempt", settle_then_lose_the_answer)
    await world.event()
    async with world.delivering() as deliverer:
        await world.requests(1)

        async def ended() -> bool:
            return lost == ["once"] and not deliverer.in_flight

        await eventually(ended, "the attempt ended after storing its outcome again")
    (delivery,) = (await world.deliveries(endpoint["id"]))["data"]
    assert delivery["state"] == "delivered"
    assert [a["outcome"] for a in delivery["attempts"]] == ["succeeded"]
    assert len(world.receiver.requests) == 1


# --- registration and the API ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://[::1]/hook",
    ],
)
async def test_internal_urls_are_refused_at_registration(world: World, url: str) -> None:
    world.app.webhooks.allow_private = False
    refused = await world.client.post(
        "/v1/webhook_endpoints", json={"url": url, "event_types": ["*"]}, headers=ACME
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    (error,) = refused.json()["errors"]
    assert error["field"] == "url" and error["code"] == "unsafe_url"
    listed = await world.client.get("/v1/webhook_endpoints", headers=ACME)
    assert listed.json()["data"] == []


async def test_a_url_changed_to_an_internal_one_is_refused_and_rechecked_before_sending(
    world: World,
) -> None:
    endpoint = await world.register()
    world.app.webhooks.allow_private = False
    changed = await world.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}",
        json={"url": "https://192.168.1.10/hook"},
        headers=ACME,
    )
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "url"
    # Registered while private addresses were allowed, delivered after they no longer are.
    await world.event()
    async with world.delivering():

        async def refused() -> bool:
            log = await world.deliveries(endpoint["id"])
            attempts = log["data"][0]["attempts"] if log["data"] else []
            return len(attempts) >= 2

        await eventually(refused, "attempts refused before sending")

    assert world.receiver.requests == []
    attempt = (await world.deliveries(endpoint["id"]))["data"][0]["attempts"][0]
    assert attempt["error"] == "unsafe URL: scheme must be https, not http"


async def test_another_tenants_endpoint_is_not_found(world: World) -> None:
    endpoint = await world.register()
    await world.event()
    base = f"/v1/webhook_endpoints/{endpoint['id']}"
    delivery = "wd_" + "0" * 32
    answers = [
        await world.client.get(base, headers=GLOBEX),
        await world.client.post(base, json={"description": "mine"}, headers=GLOBEX),
        await world.client.post(f"{base}/rotate_secret", headers=GLOBEX),
        await world.client.get(f"{base}/deliveries", headers=GLOBEX),
        await world.client.post(f"{base}/deliveries/{delivery}/redeliver", headers=GLOBEX),
        await world.client.delete(base, headers=GLOBEX),
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert (await world.client.get("/v1/webhook_endpoints", headers=GLOBEX)).json()["data"] == []
    assert (await world.client.get(base)).status_code == 401
    assert (await world.endpoint(endpoint["id"]))["description"] == ""


async def test_an_idempotency_key_replays_the_registration(world: World) -> None:
    body = {"url": world.receiver.url, "event_types": ["refund.requested.v1"]}
    keyed = {**ACME, "Idempotency-Key": "reg-1"}
    first = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    again = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    other = await world.client.post(
        "/v1/webhook_endpoints", json={**body, "description": "x"}, headers=keyed
    )
    other_tenant = await world.client.post(
        "/v1/webhook_endpoints", json=body, headers={**GLOBEX, "Idempotency-Key": "reg-1"}
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert other_tenant.status_code == 201 and other_tenant.json()["id"] != first.json()["id"]
    listed = await world.client.get("/v1/webhook_endpoints", headers=ACME)
    assert [e["id"] for e in listed.json()["data"]] == [first.json()["id"]]

    # Once the endpoint is deleted its secret is shredded: a replay cannot show it again.
    gone = await world.client.delete(f"/v1/webhook_endpoints/{first.json()['id']}", headers=ACME)
    assert gone.status_code == 200
    late = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    assert late.status_code == 409, late.text
    assert late.headers["content-type"] == "application/problem+json"
    assert "shredded" in late.json()["detail"]


async def test_a_test_event_goes_to_that_endpoint_alone_signed_and_once(world: World) -> None:
    subscribed = await world.register(event_types=["payout.succeeded.v1"])
    other = await world.register()
    path = f"/v1/webhook_endpoints/{subscribed['id']}/test"
    keyed = {**ACME, "Idempotency-Key": "try-1"}
    async with world.delivering():
        queued = await world.client.post(path, headers=keyed)
        assert queued.status_code == 202, queued.text
        (received,) = await world.requests(1)
        replayed = await world.client.post(path, headers=keyed)
        await asyncio.sleep(0.5)

    assert replayed.status_code == 202 and replayed.headers["idempotent-replayed"] == "true"
    assert len(world.receiver.requests) == 1  # not to `other`, and not twice
    event = verify(subscribed["secret"], received)
    assert event["type"] == "webhook.test.v1" and event["subject"] == subscribed["id"]
    assert event["tenant"] == "acme" and event["data"]["endpoint_id"] == subscribed["id"]
    assert received.headers["webhook-id"] == queued.json()["id"] == replayed.json()["id"]
    (logged,) = (await world.deliveries(subscribed["id"]))["data"]
    assert logged["event_type"] == "webhook.test.v1" and logged["refund_id"] is None
    assert logged["state"] == "delivered"
    assert (await world.deliveries(other["id"]))["data"] == []

    off = await world.client.post(
        f"/v1/webhook_endpoints/{other['id']}", json={"enabled": False}, headers=ACME
    )
    assert off.status_code == 200
    refused = await world.client.post(f"/v1/webhook_endpoints/{other['id']}/test", headers=ACME)
    assert refused.status_code == 409 and refused.json()["type"].endswith("endpoint-disabled")


async def test_the_event_types_to_subscribe_to_are_listed_with_their_schemas(
    world: World,
) -> None:
    listed = await world.client.get("/v1/webhook_event_types", headers=ACME)
    assert listed.status_code == 200, listed.text
    types = {t["type"]: t for t in listed.json()["data"]}
    # Intake's platform-key events travel on its topic for notify's own use: not offered.
    internal = {"api_key.issued.v1", "api_key.revoked.v1"}
    assert set(types) == {*EVENT_TYPES, "webhook.endpoint_disabled.v1"} - internal
    assert all(t["description"] for t in types.values())  # each says what it means
    paid = types["payout.succeeded.v1"]
    assert paid["source"] == "payout" and "expected_arrival" in paid["data_schema"]["properties"]
    assert types["review.evidence_received.v1"]["source"] == "review"
    assert types["customer.erased.v1"]["source"] == "intake"
    assert types["webhook.endpoint_disabled.v1"]["source"] == "notify"
    assert "webhook.test.v1" not in types  # sent on request only, never subscribed to
    # Every listed type can be subscribed to; an unknown one is refused, pointing here.
    every = await world.register(event_types=sorted(types))
    assert sorted(every["event_types"]) == sorted(types)
    body = {"url": world.receiver.url, "event_types": ["payout.paid.v1"]}
    refused = await world.client.post("/v1/webhook_endpoints", json=body, headers=ACME)
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["code"] == "unknown_event_type" and "/v1/webhook_event_types" in error["message"]
    anonymous = await world.client.get("/v1/webhook_event_types")
    assert anonymous.status_code == 401


async def test_validation_problems_name_each_bad_field(world: World) -> None:
    world.app.webhooks.allow_private = False
    bad = await world.client.post(
        "/v1/webhook_endpoints",
        json={"url": "ftp://hooks.example.com/x", "event_types": ["refund.requested.v1", "nope"]},
        headers=ACME,
    )
    shape = await world.client.post(
        "/v1/webhook_endpoints",
        json={"event_types": [], "alert_email": "not-an-address", "colour": "red"},
        headers=ACME,
    )
    mixed = await world.client.post(
        "/v1/webhook_endpoints",
        json={"url": "https://8.8.8.8/hook", "event_types": ["*", "refund.requested.v1"]},
        headers=ACME,
    )
    rotation = await world.client.post(
        "/v1/webhook_endpoints/we_" + "0" * 32 + "/rotate_secret",
        json={"expire_previous_after_seconds": 86401},
        headers=ACME,
    )

    assert bad.status_code == 422
    assert {(e["field"], e["code"]) for e in bad.json()["errors"]} == {
        ("url", "unsafe_url"),
        ("event_types.1", "unknown_event_type"),
    }
    assert shape.status_code == 422
    assert {e["field"] for e in shape.json()["errors"]} == {
        "url",
        "event_types",
        "alert_email",
        "colour",
    }
    assert mixed.status_code == 422
    assert [e["field"] for e in mixed.json()["errors"]] == ["event_types"]
    assert rotation.status_code == 422
    assert rotation.json()["errors"][0]["field"] == "expire_previous_after_seconds"


async def test_the_delivery_log_pages_newest_first(world: World) -> None:
    endpoint = await world.register()
    events = [await world.event() for _ in range(3)]
    first = await world.deliveries(endpoint["id"], limit=2)
    rest = await world.deliveries(endpoint["id"], limit=2, starting_after=first["data"][-1]["id"])
    delivered = await world.deliveries(endpoint["id"], state="delivered")
    unknown = await world.client.get(
        f"/v1/webhook_endpoints/{endpoint['id']}/deliveries",
        params={"starting_after": "wd_" + "f" * 32},
        headers=ACME,
    )

    assert first["has_more"] is True and rest["has_more"] is False
    paged = [d["event_id"] for d in first["data"] + rest["data"]]
    assert paged == [e.id for e in reversed(events)]
    assert all(d["state"] == "pending" and d["attempts"] == [] for d in first["data"])
    assert delivered["data"] == []
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "query.starting_after"


async def test_a_deleted_endpoint_gets_nothing_and_is_gone_from_the_api(world: World) -> None:
    endpoint = await world.register()
    await world.event()
    deleted = await world.client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    await world.event()
    async with world.delivering():
        await asyncio.sleep(0.6)

    assert world.receiver.requests == []
    missing = await world.client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert missing.status_code == 404
    assert (await world.client.get("/v1/webhook_endpoints", headers=ACME)).json()["data"] == []


def stored_text(world: World) -> str:
    """Every row of every table of notify's schema, as text."""
    schema = world.settings.database_schema
    with psycopg.connect(world.settings.database_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        assert len(tables) >= 4, tables  # events, tracking, read models, …
        rows = [
            row
            for (table,) in tables
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # noqa: S608
        ]
    return "\n".join(
        bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else str(v)
        for row in rows
        for v in row
    )


async def test_secrets_are_stored_sealed_and_shredded_with_their_endpoint(world: World) -> None:
    endpoint = await world.register()
    rotated = await world.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
        json={"expire_previous_after_seconds": 3600},
        headers=ACME,
    )
    assert rotated.status_code == 200, rotated.text
    secrets = [endpoint["secret"], rotated.json()["secret"]]
    async with world.delivering():
        await world.event()
        (received,) = await world.requests(1)
    for secret in secrets:  # both sign during the overlap
        verify(secret, received)

    stored = stored_text(world)
    for secret in secrets:
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
    log = await world.client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert "secret" not in log.json()

    live = world.app.webhooks.endpoint_for("acme", endpoint["id"])
    assert world.app.webhooks.secrets.live(live, datetime.now(UTC)) == secrets[::-1]
    deleted = await world.client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert deleted.status_code == 200
    gone = world.app.repository.get(live.id)
    assert (
        world.app.webhooks.secrets.live(gone, datetime.now(UTC)) == []
    )  # shredded, not just unused

    # A deletion stored by a process that died before shredding: deleting again shreds.
    cut_short = await world.register()
    cid = world.app.webhooks.endpoint_for("acme", cut_short["id"]).id
    world.app.update(cid, lambda e: e.delete(actor="tenant:acme"))
    assert world.app.webhooks.secrets.live(world.app.repository.get(cid), datetime.now(UTC))
    again = await world.client.delete(f"/v1/webhook_endpoints/{cut_short['id']}", headers=ACME)
    assert again.status_code == 404
    assert world.app.webhooks.secrets.live(world.app.repository.get(cid), datetime.now(UTC)) == []


async def test_a_secret_stored_in_clear_by_an_earlier_build_still_signs(world: World) -> None:
    endpoint = await world.register()
    uid = world.app.webhooks.endpoint_for("acme", endpoint["id"]).id
    legacy = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a secret as stored before sealing
    world.app.update(
        uid,
        lambda e: e.rotate_secret(
            secret=legacy, previous_expires_at=datetime.now(UTC), actor="tenant:acme"
        ),
    )
    async with world.delivering():
        await world.event()
        (received,) = await world.requests(1)
    verify(legacy, received)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for `hooks.test`: the server's context, and a client's that trusts it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.test"),
            *("-addext", "subjectAltName=DNS:hooks.test"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_https_goes_to_the_vetted_address_and_checks_the_hosts_certificate(
    world: World, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls
    asked: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        # `hooks.test` exists only here: the request can only reach the address vetted here.
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    world.app.webhooks.resolve = resolve
    with Receiver(tls=server_tls, host_name="hooks.test") as secure:
        endpoint = await world.register(url=secure.url)
        await world.event()
        async with world.delivering(client_tls):
            (received,) = await asyncio.to_thread(secure.wait_for, 1, WAIT)

    assert received.headers["host"] == f"hooks.test:{secure.port}"
    verify(endpoint["secret"], received)
    assert asked.count("hooks.test") >= 2  # at registration and again before the attempt
