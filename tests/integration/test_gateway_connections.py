"""The payout service's gateway client (aiohttp, shared/http_client.py) opens a connection per
concurrent call in a burst, and serves later calls one at a time on a connection it kept."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI, Request

from services.payout.providers.gateway import SandboxGateway
from tests.support.sandbox_gateway import serving

BURST = 16


def _slow_gateway() -> tuple[FastAPI, set[tuple[str, int]]]:
    """A gateway that answers each refund after a pause (so a burst needs a connection per
    refund), noting each client connection it was asked on."""
    app = FastAPI()
    peers: set[tuple[str, int]] = set()
    lock = threading.Lock()

    @app.post("/v1/refunds")
    async def refund(request: Request) -> dict[str, object]:
        body = await request.json()
        assert request.client is not None
        with lock:
            peers.add((request.client.host, request.client.port))
        await asyncio.sleep(0.2)
        return {
            "merchant_refund_no": body["merchant_refund_no"],
            "status": "succeeded",
            "provider_reference": f"gw_{body['merchant_refund_no']}",
        }

    return app, peers


async def _refund(gateway: SandboxGateway, number: int) -> None:
    await gateway.refund(
        merchant_refund_no=f"rf_{number}",
        amount=12_900,
        currency="CNY",
        method="bank_transfer",
        reference=f"pay_{number}",
    )


async def test_a_burst_opens_connections_and_later_calls_reuse_kept_ones() -> None:
    app, peers = _slow_gateway()
    with serving(app) as url:
        gateway = SandboxGateway(url)
        try:
            await asyncio.gather(*(_refund(gateway, n) for n in range(BURST)))
            assert len(peers) == BURST  # the burst needed a connection per refund
            before = set(peers)
            for n in range(BURST, BURST + 3):  # one at a time: a kept connection serves each
                await _refund(gateway, n)
            assert peers == before
        finally:
            await gateway.close()
