"""Integration tests of webhook delivery: each event POSTed once, signed, to a real HTTP
receiver (verified with the independent `standardwebhooks` package), retried with the same
webhook id while the receiver is down or failing, and redelivered on request."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.notify_sender import approved
from tests.support.webhooks import (
    ACME,
    World,
    cloud,
    eventually,
    new_refund,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    requested,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


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
        # Finished and failed, not only started: an attempt still in flight when the
        # receiver comes back would succeed.
        return len(log["data"]) == 2 and all(
            sum(a["outcome"] == "failed" for a in d["attempts"]) >= 2 for d in log["data"]
        )

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
