"""The Alipay route against the emulator served by uvicorn on free 127.0.0.1 ports, with a
receiver for its notifications; python-alipay-sdk (nobody here wrote it) talks to the same
emulator and checks what it signs."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from alipay import AliPay
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from sandbox.alipay import create_app, dev_keys
from services.payout.providers.alipay import PROVIDER, AlipayAccount, AlipayRoute, parse
from services.payout.providers.base import (
    CallbackRefused,
    PermanentProviderError,
    RefundOrder,
    TransientProviderError,
)
from shared.money import Money

WAIT = 10.0


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` on a free port in a thread; yield its base URL; stop it after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("alipay emulator (or receiver) did not start on 127.0.0.1")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        sock.close()


class Receiver:
    """Takes notifications, answers `success`, keeps the raw bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.app = FastAPI()

        @self.app.post("/notify")
        async def notify(request: Request) -> PlainTextResponse:
            self.bodies.append(await request.body())
            return PlainTextResponse("success")


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with serving(found.app) as url:
        yield found, url + "/notify"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    with serving(create_app(tmp_path)) as url:
        yield url


@pytest.fixture
async def route(emulator: str, receiver: tuple[Receiver, str]) -> AsyncIterator[AlipayRoute]:
    account = AlipayAccount(**dev_keys.dev_account(emulator))
    found = AlipayRoute(account, receiver[1], timeout=1.0)
    yield found
    await found.close()


def control(base: str, **switches: Any) -> None:
    httpx.post(f"{base}/control", json=switches).raise_for_status()


def order(number: str = "po_" + "a" * 32, amount: int = 1234, **kw: Any) -> RefundOrder:
    return RefundOrder(
        merchant_refund_no=number,
        refund_id="r-1",
        tenant="t-1",
        amount=Money(amount, kw.pop("currency", "CNY")),
        method="alipay",
        payment_reference=kw.pop("reference", "order-42"),
        **kw,
    )


def make_trade(base: str, out_trade_no: str, total: int, status: str = "TRADE_SUCCESS") -> None:
    body = {"out_trade_no": out_trade_no, "total_amount": total, "status": status}
    httpx.post(f"{base}/test/trades", json=body).raise_for_status()


def sdk(base: str) -> AliPay:
    client = AliPay(
        appid=dev_keys.DEV_APP_ID,
        app_private_key_string=dev_keys.APP_PRIVATE_KEY,
        alipay_public_key_string=dev_keys.ALIPAY_PUBLIC_KEY,
        sign_type="RSA2",
    )
    client._gateway = f"{base}/gateway.do"  # the SDK has no setting for another host
    return client


async def test_refund_is_paid_once_and_a_retry_pays_nothing_twice(
    route: AlipayRoute, emulator: str
) -> None:
    make_trade(emulator, "order-42", 10_000)
    first = await route.refund(order())
    assert (first.status, first.amount, first.currency) == ("success", 1234, "CNY")
    assert first.executed_at is not None and len(first.provider_reference) == 28
    again = await route.refund(order())  # fund_change N: settled by the query
    assert (again.status, again.amount) == ("success", 1234)
    # The SDK verifies the emulator's signed answer: one refund of 12.34 under the number.
    seen = await asyncio.to_thread(
        sdk(emulator).api_alipay_trade_fastpay_refund_query,
        out_request_no=order().merchant_refund_no,
        out_trade_no="order-42",
    )
    assert (seen["refund_status"], seen["refund_amount"]) == ("REFUND_SUCCESS", "12.34")
    with pytest.raises(PermanentProviderError, match=r"ACQ\.REFUND_AMT_NOT_EQUAL_TOTAL"):
        await route.refund(order("po_" + "e" * 32, amount=10_000 - 1234 + 1))
    found = await route.query(order())
    assert found is not None and found.status == "success" and found.amount == 1234
    assert await route.query(order("po_" + "b" * 32)) is None


async def test_timeout_after_commit_is_resolved_by_the_query(
    route: AlipayRoute, emulator: str
) -> None:
    make_trade(emulator, "order-42", 2_000)
    control(emulator, timeout_after_commit_next=1, timeout_ms=2500)
    with pytest.raises(TransientProviderError, match="unreachable"):
        await route.refund(order(amount=1_500))
    found = await route.query(order(amount=1_500))
    assert found is not None and (found.status, found.amount) == ("success", 1_500)
    # A second refund under another number would exceed what remains: nothing paid twice.
    with pytest.raises(PermanentProviderError, match=r"ACQ\.REFUND_AMT_NOT_EQUAL_TOTAL"):
        await route.refund(order("po_" + "c" * 32, amount=1_500))


async def test_processing_refund_is_settled_by_the_notification_and_the_query(
    route: AlipayRoute, emulator: str, receiver: tuple[Receiver, str]
) -> None:
    control(emulator, processing_next=1, processing_ms=700)
    accepted = await route.refund(order())
    assert accepted.status == "processing" and accepted.executed_at is None
    assert await route.query(order()) is None  # no REFUND_SUCCESS yet
    await wait_until(lambda: bool(receiver[0].bodies), "the refund notification")
    body = receiver[0].bodies[0]
    note = PROVIDER.callbacks(route.account).verify({}, body, time.time())
    assert note.merchant_refund_no == order().merchant_refund_no
    assert note.receipt.status == "success" and note.callback_id
    found = await route.query(order())
    assert found is not None and found.status == "success"
    # The SDK's verifier accepts the emulator's notification too.
    params = dict(parse_qsl(body.decode()))
    signature = params.pop("sign")
    assert sdk(emulator).verify(params, signature)


async def test_the_refund_listing_shows_each_refund_once_processing_until_paid(
    route: AlipayRoute, emulator: str
) -> None:
    make_trade(emulator, "order-42", 10_000)
    await route.refund(order(amount=1_000))
    await route.refund(order(amount=1_000))  # the same number again: nothing moves twice
    control(emulator, processing_next=1, processing_ms=60_000)
    await route.refund(order("po_" + "d" * 32, amount=2_000))
    listed = httpx.get(f"{emulator}/test/refunds").json()
    assert listed["count"] == 2
    shown = {r["out_request_no"]: r for r in listed["refunds"]}
    paid, later = shown[order().merchant_refund_no], shown["po_" + "d" * 32]
    assert (paid["amount"], paid["refund_status"], paid["out_trade_no"]) == (
        1_000,
        "REFUND_SUCCESS",
        "order-42",
    )
    assert (later["amount"], later["refund_status"]) == (2_000, "PROCESSING")
    assert len(paid["trade_no"]) == 28 and paid["trade_no"] == later["trade_no"]


async def test_dropped_and_mis_signed_notifications(
    route: AlipayRoute, emulator: str, receiver: tuple[Receiver, str]
) -> None:
    control(emulator, drop_notifications_next=1, missign_notifications_next=1)
    await route.refund(order("po_" + "1" * 32))  # dropped: the query is the fallback
    await route.refund(order("po_" + "2" * 32))  # mis-signed
    await wait_until(lambda: bool(receiver[0].bodies), "the mis-signed notification")
    with pytest.raises(CallbackRefused, match="bad-signature"):
        PROVIDER.callbacks(route.account).verify({}, receiver[0].bodies[0], time.time())
    assert "po_" + "2" * 32 in receiver[0].bodies[0].decode()
    found = await route.query(order("po_" + "1" * 32))
    assert found is not None and found.status == "success"
    listed = httpx.get(f"{emulator}/notifications").json()["notifications"]
    assert sorted(n["state"] for n in listed) == ["delivered", "dropped"]


async def test_a_refund_is_announced_as_its_money_moves_even_after_a_quiet_spell(
    route: AlipayRoute, emulator: str, receiver: tuple[Receiver, str]
) -> None:
    """A quiet notifier looks only once a second, but a refund made wakes it: a notification
    fault armed right after a refund strikes the next refund's announcement, not this one's."""
    await asyncio.sleep(2)  # quiet: the notifier has backed off to its longest pause
    first, second = "po_" + "3" * 32, "po_" + "4" * 32
    await route.refund(order(first))
    control(emulator, drop_notifications_next=1)
    await route.refund(order(second))
    await wait_until(lambda: bool(receiver[0].bodies), "the first refund's notification")
    states = {
        n["out_request_no"]: n["state"]
        for n in httpx.get(f"{emulator}/notifications").json()["notifications"]
    }
    assert states == {first: "delivered", second: "dropped"}


@pytest.mark.parametrize(
    ("switches", "error", "words"),
    [
        ({"system_error_next": 1}, TransientProviderError, "ACQ.SYSTEM_ERROR"),
        ({"fail_next": 1, "fail_status": 503}, TransientProviderError, "HTTP 503"),
        ({"fail_next": 1, "fail_status": 429}, TransientProviderError, "HTTP 429"),
        ({"balance_short_next": 1}, PermanentProviderError, "ACQ.SELLER_BALANCE_NOT_ENOUGH"),
        ({"auto_trades": False}, PermanentProviderError, "ACQ.TRADE_NOT_EXIST"),
    ],
)
async def test_failures_are_mapped(
    route: AlipayRoute, emulator: str, switches: dict[str, Any], error: type, words: str
) -> None:
    control(emulator, **switches)
    with pytest.raises(error, match=words):
        await route.refund(order())
    if error is PermanentProviderError:
        assert await route.query(order()) is None  # nothing was refunded under the number


async def test_refunds_beyond_the_payment_or_of_a_closed_trade_are_refused(
    route: AlipayRoute, emulator: str
) -> None:
    make_trade(emulator, "order-42", 1_000)
    make_trade(emulator, "closed-1", 1_000, status="TRADE_CLOSED")
    with pytest.raises(PermanentProviderError, match=r"ACQ\.REFUND_AMT_NOT_EQUAL_TOTAL"):
        await route.refund(order(amount=1_001))
    with pytest.raises(PermanentProviderError, match=r"ACQ\.TRADE_STATUS_ERROR"):
        await route.refund(order(reference="closed-1"))
    with pytest.raises(PermanentProviderError, match="CNY only"):
        await route.refund(order(currency="USD"))
    # The same number with another amount: Alipay refuses the discordant repeat.
    await route.refund(order(amount=100))
    with pytest.raises(PermanentProviderError, match=r"ACQ\.DISCORDANT_REPEAT_REQUEST"):
        await route.refund(order(amount=200))


async def test_a_request_signed_with_another_key_is_refused_as_invalid_signature(
    emulator: str,
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    settings = {**dev_keys.dev_account(emulator), "app_public_key": None}
    settings["app_private_key"] = pem.decode()  # not the key the dev app registered
    route = AlipayRoute(AlipayAccount(**settings), "", timeout=1.0)
    try:
        with pytest.raises(PermanentProviderError, match=r"40002 isv\.invalid-signature"):
            await route.refund(order())
    finally:
        await route.close()


async def test_answers_signed_with_another_key_never_settle(emulator: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = stranger.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    settings = {**dev_keys.dev_account(emulator), "alipay_public_key": pem.decode()}
    route = AlipayRoute(AlipayAccount(**settings), "", timeout=1.0)
    try:
        with pytest.raises(TransientProviderError, match="does not verify"):
            await route.refund(order())
    finally:
        await route.close()


async def test_the_sdk_refunds_and_queries_against_the_emulator(emulator: str) -> None:
    client = sdk(emulator)
    paid = await asyncio.to_thread(
        client.api_alipay_trade_refund,
        refund_amount="12.34",
        out_trade_no="sdk-order",
        out_request_no="sdk-refund-1",
    )
    assert paid["code"] == "10000" and paid["fund_change"] == "Y"
    found = await asyncio.to_thread(
        client.api_alipay_trade_fastpay_refund_query,
        out_request_no="sdk-refund-1",
        out_trade_no="sdk-order",
    )
    assert found["refund_status"] == "REFUND_SUCCESS" and found["refund_amount"] == "12.34"


async def test_the_bill_download_parses_to_the_refunds(route: AlipayRoute, emulator: str) -> None:
    await route.refund(order(amount=1_001))
    await route.refund(order("po_" + "d" * 32, amount=99))
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    answer = await asyncio.to_thread(
        sdk(emulator).server_api,
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": day},
    )
    data = httpx.get(answer["bill_download_url"]).content
    lines = parse(data)
    assert sorted((line.merchant_refund_no, line.amount) for line in lines) == [
        ("po_" + "a" * 32, 1_001),
        ("po_" + "d" * 32, 99),
    ]
