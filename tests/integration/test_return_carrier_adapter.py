"""Review's Kuaidi100 adapter against the real sandbox carrier, served by uvicorn on a free
port, pushing to a real HTTP receiver: subscribe, advance, read the pushes, query, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from services.review.returns.carriers import (
    BadPushSignature,
    Kuaidi100,
    PermanentCarrierError,
    TransientCarrierError,
)
from services.review.returns.trail import Trail
from tests.integration.test_sandbox_carrier import (
    ACCEPT,
    CUSTOMER,
    KEY,
    WAIT,
    advance,
    carrier,
    new_shipment,
)
from tests.support.receiver import Receiver

SALT = "review-integration-salt"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        started.reply = ACCEPT
        yield started


@asynccontextmanager
async def kuaidi100(client: httpx.Client, **overrides: str) -> AsyncIterator[Kuaidi100]:
    options = {"key": KEY, "customer": CUSTOMER, "salt": SALT, **overrides}
    adapter = Kuaidi100(str(client.base_url), timeout=WAIT, **options)
    try:
        yield adapter
    finally:
        await adapter.close()


def pushes(adapter: Kuaidi100, receiver: Receiver, count: int) -> list[Trail]:
    """The first `count` pushes the receiver got, each read by the adapter from its raw form."""
    received = receiver.wait_for(count, WAIT)[:count]
    return [adapter.parse_push(dict(parse_qsl(r.body.decode()))) for r in received]


async def test_subscribe_advance_push_and_query_agree_on_delivered(
    tmp_path: Path, receiver: Receiver
) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "shunfeng")
        async with kuaidi100(client) as adapter:
            pending = await adapter.query("shunfeng", number.lower())
            assert (pending.state, pending.events) == ("pending", frozenset())
            await adapter.subscribe("shunfeng", number, receiver.url)
            await adapter.subscribe("shunfeng", number, receiver.url)  # 501: already ours
            advance(client, "shunfeng", number)
            receiver.wait_for(1, WAIT)
            advance(client, "shunfeng", number, to="in_transit")
            receiver.wait_for(2, WAIT)
            advance(client, "shunfeng", number, to="delivered")
            trails = pushes(adapter, receiver, 3)
            assert [t.state for t in trails] == ["picked_up", "in_transit", "delivered"]
            assert [t.push_status for t in trails] == ["polling", "polling", "shutdown"]
            known: Trail | None = None
            for trail in trails:
                assert trail.is_news_to(known)
                known = trail.merged(known)
            assert known is not None and known.delivered and len(known.events) == 4
            assert (known.carrier, known.number) == ("shunfeng", number)
            queried = await adapter.query("shunfeng", number)
            assert queried.delivered and queried.events == known.events
            assert not queried.is_news_to(known.merged(queried))
            assert [e.status for e in queried.newest_first()] == ["签收", "派件", "在途", "揽收"]


async def test_duplicate_stale_and_wrongly_signed_pushes(
    tmp_path: Path, receiver: Receiver
) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "yuantong")
        async with kuaidi100(client) as adapter:
            await adapter.subscribe("yuantong", number, receiver.url)
            client.post("/sandbox/control", json={"duplicate_push_next": 1})
            advance(client, "yuantong", number, to="in_transit")
            first, twice = pushes(adapter, receiver, 2)
            assert not twice.is_news_to(first) and twice.news_since(first) == frozenset()
            client.post("/sandbox/control", json={"stale_push_next": 1})
            advance(client, "yuantong", number)  # out for delivery, then the older trail
            newer, stale = pushes(adapter, receiver, 4)[2:]
            known = newer.merged(first)
            assert (newer.state, stale.state) == ("out_for_delivery", "in_transit")
            assert not stale.is_news_to(known) and stale.merged(known) == known
            client.post("/sandbox/control", json={"wrong_salt_next": 1})
            advance(client, "yuantong", number)
            forged = receiver.wait_for(5, WAIT)[4]
            with pytest.raises(BadPushSignature):
                adapter.parse_push(dict(parse_qsl(forged.body.decode())))
            # The refused push's events come back with the real trail on a query.
            queried = await adapter.query("yuantong", number)
            assert queried.delivered and queried.is_news_to(known)


async def test_query_faults_are_transient_and_a_wrong_key_is_permanent(
    tmp_path: Path, receiver: Receiver
) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "ems")
        advance(client, "ems", number, to="in_transit")
        async with kuaidi100(client) as adapter:
            client.post("/sandbox/control", json={"query_http_error_next": 1})
            with pytest.raises(TransientCarrierError, match="503"):
                await adapter.query("ems", number)
            client.post("/sandbox/control", json={"query_fail_next": 1})
            with pytest.raises(TransientCarrierError, match="502"):
                await adapter.query("ems", number)
            assert (await adapter.query("ems", number)).state == "in_transit"
        async with kuaidi100(client, key="not-the-key") as stranger:
            with pytest.raises(PermanentCarrierError, match="600"):
                await stranger.subscribe("ems", number, receiver.url)
            with pytest.raises(PermanentCarrierError, match="503"):
                await stranger.query("ems", number)
        async with kuaidi100(client, customer="SOMEONEELSE") as unknown:
            with pytest.raises(PermanentCarrierError, match="400"):
                await unknown.query("ems", number)
