"""Payout's asynchronous completion against the real sandbox gateway and PostgreSQL: a
lost callback resolved by the status poller, and a signed callback settling the payout
once while forged, stale and replayed ones are refused and recorded.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from sandbox.gateway import signature_header
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.callbacks import RefusedCallback
from services.payout.poller import StatusPoller
from services.payout.settings import CALLBACK_PATH, PayoutSettings
from tests.support.payout_gateway import (
    SECRET,
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
    stored,
)
from tests.support.sandbox_gateway import control, ledger_entries, serving

pytestmark = pytest.mark.slow


async def test_lost_callback_is_resolved_by_the_poller(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    control(gateway, async_mode=True, completion_delay_ms=200, drop_callbacks_next=1)
    payout_id = approve(app, approval(method="bank_transfer"))
    async with harness(app, settings, notify_url="http://127.0.0.1:9/nowhere") as h:
        payout = await h.execute(payout_id)
        assert payout.status == "processing"
        poller = StatusPoller(app, h.routes, after_s=0.1, interval_s=0.05)
        deadline = time.monotonic() + 10
        while app.payout(payout_id).status == "processing":
            assert time.monotonic() < deadline, "poller never settled the payout"
            await poller.poll_once()
            await asyncio.sleep(0.1)
    payout = app.payout(payout_id)
    assert payout.status == "paid"
    [entry] = ledger_entries(gateway)
    assert entry["provider_reference"] == payout.provider_reference
    assert gateway.get("/callbacks").json()["callbacks"][0]["state"] == "dropped"


def _signed(
    body: dict[str, Any], secret: str = SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "Gateway-Signature": signature_header(secret, at or int(time.time()), raw),
        "Gateway-Callback-Id": body["id"],
    }
    return raw, headers


async def test_signed_callback_settles_once_forged_and_replayed_ones_are_refused_and_recorded(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    http = http_api(app, settings)
    control(gateway, async_mode=True, completion_delay_ms=200)
    payout_id = approve(app, approval(method="card"))
    with serving(http) as payout_url:
        async with harness(app, settings, notify_url=payout_url + CALLBACK_PATH) as h:
            assert (await h.execute(payout_id)).status == "processing"
            deadline = time.monotonic() + 10
            while app.payout(payout_id).status == "processing":
                assert time.monotonic() < deadline, "callback never settled the payout"
                await asyncio.sleep(0.05)
        # The payout settles while the gateway still awaits our answer to its callback: it
        # records the attempt's outcome once that answer is in.
        deadline = time.monotonic() + 10
        while (callbacks := gateway.get("/callbacks").json()["callbacks"])[0]["state"] == "sending":
            assert time.monotonic() < deadline, "the gateway never learnt our answer"
            await asyncio.sleep(0.05)
        [delivered] = callbacks
        assert delivered["state"] == "delivered"
        payout = app.payout(payout_id)
        assert payout.status == "paid"
        log = app.callback_log(delivered["id"])
        assert log is not None and log.outcome == "paid"

        refund = gateway.get(f"/v1/refunds/{payout.merchant_refund_no}").json()
        callback = {"id": delivered["id"], "type": "refund.success", "data": refund}
        forged = {
            "id": "cb_forged",
            "type": "refund.closed",
            "data": {**refund, "status": "closed"},
        }
        stale_at = int(time.time()) - 3600
        async with httpx.AsyncClient(base_url=payout_url) as client:

            async def post(signed: tuple[bytes, dict[str, str]]) -> httpx.Response:
                return await client.post(CALLBACK_PATH, content=signed[0], headers=signed[1])

            replayed = await post(_signed(callback))
            wrong_key = await post(_signed(forged, "guess"))
            stale = await post(_signed(forged, at=stale_at))
            unsigned = await client.post(CALLBACK_PATH, content=b'{"id":"cb_x"}')
    assert replayed.status_code == 409
    assert replayed.headers["content-type"] == "application/problem+json"
    assert [r.status_code for r in (wrong_key, stale, unsigned)] == [401, 401, 401]
    log = app.callback_log(delivered["id"])
    assert log is not None and log.repeats == 1
    refused = stored(app, RefusedCallback.Refused)  # type: ignore[attr-defined]
    assert [r.callback_id for r in refused] == ["cb_forged", "cb_forged", None]
    assert app.payout(payout_id).status == "paid"
    assert len(ledger_entries(gateway)) == 1
