"""Our Stripe route against localstripe, a Stripe emulator written by someone else: a peer
check that our requests and our reading of the answers follow Stripe's API, not just our
own emulator. localstripe runs in a child process on a socket we bound to 127.0.0.1
(its own CLI binds every interface); it must start, or the test fails naming it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.payout.providers.base import RefundOrder
from services.payout.providers.stripe import StripeAccount, StripeRoute
from shared.money import Money

SECRET_KEY = "sk_test_" + "L" * 24
SERVE = (
    "import socket, sys\n"
    "from aiohttp import web\n"
    "from localstripe.server import app\n"
    "web.run_app(app, sock=socket.socket(fileno=int(sys.argv[1])), print=None)\n"
)


@pytest.fixture
def localstripe() -> Iterator[httpx.Client]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sock.close()  # the child holds its own copy
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {SECRET_KEY}"})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.get("/v1/charges")
                break
            except httpx.TransportError:
                if child.poll() is not None or time.monotonic() > deadline:
                    error = child.stderr.read().decode()[-500:] if child.stderr else ""
                    pytest.fail(f"localstripe did not start on {base}: {error}")
                time.sleep(0.1)
        yield client
    finally:
        client.close()
        child.terminate()
        child.wait(timeout=10)


def card_payment(client: httpx.Client, amount: int) -> str:
    method = client.post(
        "/v1/payment_methods",
        data={"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
              "card[exp_year]": "2030", "card[cvc]": "123"},
    )  # fmt: skip
    assert method.status_code == 200, method.text
    intent = client.post(
        "/v1/payment_intents",
        data={"amount": str(amount), "currency": "usd", "payment_method": method.json()["id"],
              "confirm": "true"},
    )  # fmt: skip
    assert intent.status_code == 200, intent.text
    assert intent.json()["status"] == "succeeded"
    payment: str = intent.json()["id"]
    return payment


async def test_our_route_refunds_and_finds_a_localstripe_payment(
    localstripe: httpx.Client,
) -> None:
    payment = card_payment(localstripe, 2000)
    account = StripeAccount(
        secret_key=SECRET_KEY,  # type: ignore[arg-type]
        webhook_secrets=["whsec_" + "l" * 32],  # type: ignore[list-item]
        api_base=str(localstripe.base_url),
    )
    wanted = RefundOrder(
        merchant_refund_no=f"po_{uuid.uuid4().hex}",
        refund_id=str(uuid.uuid4()),
        tenant="acme",
        amount=Money(1500, "USD"),
        method="card",
        payment_reference=payment,
    )
    route = StripeRoute(account, "http://unused/callbacks")
    try:
        receipt = await route.refund(wanted)
        found = await route.query(wanted)
        other = await route.query(
            RefundOrder(**{**wanted.__dict__, "merchant_refund_no": f"po_{uuid.uuid4().hex}"})
        )
    finally:
        await route.close()
    assert receipt.status == "success" and receipt.provider_reference.startswith("re_")
    assert (receipt.amount, receipt.currency) == (1500, "USD")
    assert found is not None and found.provider_reference == receipt.provider_reference
    assert found.merchant_refund_no == wanted.merchant_refund_no
    assert other is None
    charge = localstripe.get(f"/v1/payment_intents/{payment}").json()
    refunded = localstripe.get("/v1/refunds", params={"payment_intent": payment}).json()
    assert [r["amount"] for r in refunded["data"]] == [1500], charge
