"""Integration tests of disabling webhook endpoints: a 410, or failing for too long,
disables an endpoint; its tenant is told once by e-mail (a real SMTP sink) and by a
`webhook.endpoint_disabled.v1` event to its other endpoints."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.receiver import Receiver
from tests.support.webhooks import (
    ACME,
    WAIT,
    World,
    eventually,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


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

    # It kept trying for the whole 0.6 s before giving up (the rule counts time, not
    # attempts: under load fewer retries fit in), and nothing reached it once disabled.
    first, last = world.receiver.requests[0], world.receiver.requests[tried - 1]
    assert len(world.receiver.requests) == tried >= 2
    assert last.at - first.at >= 0.5  # less the time each failure took to be recorded
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
