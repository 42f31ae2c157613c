"""Platform webhooks on PostgreSQL for the integration tests (test_webhooks_*.py and
test_return_webhooks.py): upstream events, a `World` (notify, its webhook API, a real HTTP
receiver and a mail sink), its fixtures, and checking a signature as a receiver would.

A test module imports the fixtures it uses by name (`world` needs `receiver` and `sink`):
`from tests.support.webhooks import receiver_fixture, sink_fixture, world_fixture`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.bootstrap import http_api
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import SmtpMailer
from services.notify.settings import NotifySettings
from services.notify.webhooks.deliverer import Deliverer
from shared.auth import ApiKeys, parse_api_keys
from shared.contracts import CloudEvent, IntegrationEvent, RefundRequestedV1, envelope
from shared.keystore import open_keystore
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.staff_tokens import DEV_JWT_SECRET
from shared.store import store_env
from tests.support.notify_sender import NOW, new_refund_id
from tests.support.notify_sender import requested as requested_in
from tests.support.receiver import Received, Receiver

WAIT = 10.0
ACME = {"authorization": "Bearer sk_test_acme_0123456789"}
GLOBEX = {"authorization": "Bearer sk_test_globex_0123456789"}
KEYS = "acme:sk_test_acme_0123456789,globex:sk_test_globex_0123456789"
SHORT_SCHEDULE = ",".join(["0"] + ["0.2"] * 30)  # 31 attempts, 0.2 s apart


# --- upstream events: notify's sender tests' own, in English -------------------------------


def requested(refund_id: str) -> RefundRequestedV1:
    return requested_in(refund_id, locale="en")


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


new_refund = new_refund_id


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


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(name="sink")
def sink_fixture() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


@pytest.fixture(name="world")
async def world_fixture(
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
