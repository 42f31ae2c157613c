"""Integration tests of platform webhooks for a return's events: the catalog offers each with
its publisher and schema, and an endpoint subscribed to them gets each one signed, exactly
once, however often it reaches notify (PostgreSQL store, real HTTP receivers)."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.contracts import PUBLISHED_BY, CloudEvent, returns
from tests.support import returns as r
from tests.support.receiver import Received, Receiver
from tests.support.webhooks import (
    ACME,
    WAIT,
    World,
    cloud,
    new_refund,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    requested,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)

# The return's types: review's steps, and the shipment intake publishes.
RETURN_TYPES = {
    **{model.TYPE: "review" for model in returns.REVIEW_PUBLISHES},
    returns.ReturnShippedV1.TYPE: "intake",
}


def one_return(refund: str) -> list[CloudEvent]:
    """A refund requested, then every event a return can publish, on their topics."""
    return [
        cloud(requested(refund), "intake", 1),
        cloud(r.return_requested(refund), "review", 1),
        cloud(r.ship_by_approaching(refund), "review", 2),
        cloud(r.shipped(refund), "intake", 2),
        cloud(r.delivered(refund), "review", 3),
        cloud(r.received(refund), "review", 4),
        cloud(r.deadline_missed(refund, "receipt_by"), "review", 5),
        cloud(r.exchange_ready(refund), "review", 6),
    ]


async def test_the_catalog_offers_every_return_type_with_its_publisher_and_schema(
    world: World,
) -> None:
    listed = await world.client.get("/v1/webhook_event_types", headers=ACME)
    assert listed.status_code == 200, listed.text
    types = {t["type"]: t for t in listed.json()["data"]}

    assert len(RETURN_TYPES) == 7 and set(RETURN_TYPES) <= set(types)
    for name, publisher in RETURN_TYPES.items():
        offered = types[name]
        assert offered["source"] == publisher == PUBLISHED_BY[name], name
        assert offered["description"], name
        properties = offered["data_schema"]["properties"]
        assert {"refund_id", "tenant", "order_id", "rma"} <= set(properties), name
    requested_schema = types["refund.return_requested.v1"]["data_schema"]
    assert {"address", "items", "ship_by"} <= set(requested_schema["properties"])
    received_schema = types["return.received.v1"]["data_schema"]
    assert {"outcome", "deducted", "items"} <= set(received_schema["properties"])
    # Each can be subscribed to by name.
    endpoint = await world.register(event_types=sorted(RETURN_TYPES))
    assert sorted(endpoint["event_types"]) == sorted(RETURN_TYPES)


async def test_subscribers_get_each_return_event_signed_and_once(world: World) -> None:
    """Three endpoints of one tenant: subscribed to the return's types by name, to every type,
    and to refund requests only; each event reaches notify three times."""
    with Receiver() as everything_receiver, Receiver() as requests_receiver:
        by_name = await world.register(event_types=sorted(RETURN_TYPES))
        everything = await world.register(url=everything_receiver.url, event_types=["*"])
        requests_only = await world.register(
            url=requests_receiver.url, event_types=["refund.requested.v1"]
        )
        messages = one_return(new_refund())
        async with world.delivering():
            again = [m.model_copy(update={"position": m.position + 50}) for m in messages]
            assert await world.feed(*messages) == [True] * len(messages)
            assert await world.feed(*messages) == [False] * len(messages)
            assert await world.feed(*again) == [True] * len(again)
            got = await world.requests(len(RETURN_TYPES))
            all_got = await asyncio.to_thread(everything_receiver.wait_for, len(messages), WAIT)
            only_got = await asyncio.to_thread(requests_receiver.wait_for, 1, WAIT)
            await asyncio.sleep(0.5)  # anything more would arrive by now

    assert len(world.receiver.requests) == len(RETURN_TYPES)
    assert len(everything_receiver.requests) == len(messages)
    assert len(requests_receiver.requests) == 1
    sent = {m.id: m for m in messages}

    def delivered(secret: str, requests: list[Received]) -> dict[str, str]:
        """Each request verified with the endpoint's secret (Standard Webhooks): event id →
        type, one request per event, the body as notify consumed it."""
        found = {}
        for request in requests:
            event = verify(secret, request)
            assert event["id"] not in found, f"{event['type']} delivered twice"
            assert request.body == sent[event["id"]].to_bytes()
            assert request.headers["webhook-id"].startswith("wd_")
            found[event["id"]] = event["type"]
        return found

    by_name_types = delivered(by_name["secret"], got)
    assert sorted(by_name_types.values()) == sorted(RETURN_TYPES)
    everything_types = delivered(everything["secret"], all_got)
    assert sorted(everything_types.values()) == sorted(m.type for m in messages)
    assert list(delivered(requests_only["secret"], only_got).values()) == ["refund.requested.v1"]
    # The tenant's delivery log says the same.
    log = await world.deliveries(by_name["id"], limit=100)
    assert sorted(d["event_type"] for d in log["data"]) == sorted(RETURN_TYPES)
    assert {d["state"] for d in log["data"]} == {"delivered"}
    first = json.loads(got[0].body)
    assert first["tenant"] == "acme" and first["data"]["rma"] == r.RMA
