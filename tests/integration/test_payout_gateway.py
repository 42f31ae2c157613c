"""Payout against the real sandbox gateway (uvicorn) and PostgreSQL, paid exactly once:
duplicated approvals and a repeated batch, a timeout after the money moved, a crash
between sending and recording, a dispatch that never left; the gateway's ledger judges.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.providers.gateway import SandboxGateway
from services.payout.settings import PayoutSettings
from shared.contracts import PayoutSucceededV1
from shared.store import store_env
from tests.support.payout_gateway import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    message,
    positions,
    published,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
    stored,
)
from tests.support.sandbox_gateway import control, ledger_entries

pytestmark = pytest.mark.slow


async def test_duplicated_approval_messages_pay_once(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    event = approval()
    first = message(event, source="review")
    republished = first.model_copy(update={"position": next(positions)})  # same id, new offset
    assert app.handle(first)
    assert not app.handle(first)  # redelivered: tracking drops it
    assert app.handle(republished)  # re-published by a relay: the payout id absorbs it
    assert len(stored(app, Payout.Requested)) == 1  # type: ignore[attr-defined]

    async with harness(app, settings) as h:
        stop = asyncio.Event()
        executor = h.executor()
        task = asyncio.create_task(executor.run(stop))
        payout_id = Payout.create_id(first.id)
        deadline = time.monotonic() + 10
        while app.payout(payout_id).status != "paid":
            assert time.monotonic() < deadline, "payout not settled"
            await asyncio.sleep(0.05)
        # The executor's position is lost (a crash before it was saved): the batch repeats.
        await executor.follower.rewind()
        await asyncio.sleep(0.5)
        stop.set()
        await task
    [entry] = ledger_entries(gateway)
    payout = app.payout(payout_id)
    assert entry["merchant_refund_no"] == payout.merchant_refund_no
    assert entry["provider_reference"] == payout.provider_reference
    assert h.posts() == 1  # the repeat asked first and found it paid


async def test_a_payout_sent_nowhere_yet_goes_out_after_one_thread_hop(
    app: PayoutApplication,
    settings: PayoutSettings,
    gateway: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loaded, its dispatch recorded and its route found in one hop off the event loop;
    the receipt recorded in a second: each hop costs a thread wake-up or two."""
    payout_id = approve(app, approval())
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    async with harness(app, settings) as h:
        monkeypatch.setattr(asyncio, "to_thread", counted)
        paid = await h.execute(payout_id)
        monkeypatch.undo()
    assert paid.status == "paid" and h.posts() == 1
    assert hops == ["_dispatch_first", "record_receipt"]
    assert len(ledger_entries(gateway)) == 1


async def test_timeout_after_the_money_moved_is_resolved_without_paying_twice(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card"))
    control(gateway, timeout_after_commit_next=1)
    async with harness(app, settings) as h:
        payout = await h.execute(payout_id)
    assert payout.status == "paid"
    [entry] = ledger_entries(gateway)
    assert entry["provider_reference"] == payout.provider_reference
    assert h.posts() == 1 and "GET" in h.requests[-1]  # the retry queried, found it paid
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    refund = gateway.get(f"/v1/refunds/{payout.merchant_refund_no}").json()
    assert succeeded.expected_arrival.date().isoformat() == refund["arrival"]["latest"]


async def test_crash_between_send_and_record_queries_instead_of_sending(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="wechat_pay"))
    # The first process recorded the dispatch and sent the refund, then died.
    payout = app.record_dispatch(payout_id, datetime.now(UTC))
    before = SandboxGateway(settings.gateway_url)
    await before.refund(
        merchant_refund_no=payout.merchant_refund_no,
        amount=4200,
        currency="CNY",
        method="wechat_pay",
        reference="pay_1",
    )
    await before.close()
    control(gateway, fail_next=1)  # any new POST would use this up

    restarted = PayoutApplication(env=store_env(settings, "payout"))
    try:
        async with harness(restarted, settings) as h:
            assert (await h.execute(payout_id)).status == "paid"
    finally:
        restarted.close()
    assert h.posts() == 0
    assert control(gateway)["fail_next"] == 1
    assert len(ledger_entries(gateway)) == 1


async def test_dispatched_but_never_sent_is_sent_after_the_query(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval())
    app.record_dispatch(payout_id, datetime.now(UTC))  # died before the request left
    async with harness(app, settings) as h:
        assert (await h.execute(payout_id)).status == "paid"
    assert h.requests[0].startswith("GET") and h.posts() == 1
    assert len(ledger_entries(gateway)) == 1
