"""Integration tests of webhook attempts whose outcome was lost: a crash between sending
and recording leaves the delivery uncertain, never resent unasked; a claim or an outcome
committed though its answer was lost is settled by the running deliverer, once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.support.webhooks import (
    ACME,
    World,
    eventually,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


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
