"""The WeChat Pay route against the emulator served by uvicorn on a free port: the emulator's
refund list judges what was paid; callbacks reach a real receiver and verify."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.wechatpay import create_app, dev_account
from services.payout.providers.base import (
    PermanentProviderError,
    ProviderNotification,
    RefundOrder,
    TransientProviderError,
)
from services.payout.providers.wechatpay import PROVIDER, WeChatPayAccount, WeChatPayRoute
from services.payout.providers.wechatpay.callbacks import WeChatPayCallbacks
from shared.money import Money
from tests.support.sandbox_gateway import serving

WAIT = 5.0


class Receiver:
    """A notify URL on a free port: verifies each callback, answers 204 or 401."""

    def __init__(self, verifier: WeChatPayCallbacks) -> None:
        self.taken: list[ProviderNotification] = []
        self.refused: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    outer.taken.append(verifier.verify(dict(self.headers), body, time.time()))
                    self.send_response(204)
                except Exception as error:
                    outer.refused.append(str(error))
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/providers/wechatpay/t1/callbacks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[httpx.Client]:
    with serving(create_app(tmp_path)) as url, httpx.Client(base_url=url, timeout=5) as client:
        client.post("/sandbox/control", json={"signtest_ratio": 0, "callback_retry_ms": 100})
        yield client


@pytest.fixture
def account(emulator: httpx.Client) -> WeChatPayAccount:
    return WeChatPayAccount(**dev_account(str(emulator.base_url)))


@pytest.fixture
def receiver(account: WeChatPayAccount) -> Iterator[Receiver]:
    r = Receiver(WeChatPayCallbacks(account))
    yield r
    r.stop()


def order(amount: int = 12900, reference: str | None = None, **kw: Any) -> RefundOrder:
    return RefundOrder(
        merchant_refund_no=f"po_{uuid.uuid4().hex}",
        refund_id=str(uuid.uuid4()),
        tenant="t1",
        amount=Money(amount, "CNY"),
        method="wechat_pay",
        payment_reference=reference or f"ORD{uuid.uuid4().hex[:20]}",
        **kw,
    )


def control(emulator: httpx.Client, **switches: Any) -> None:
    emulator.post("/sandbox/control", json=switches).raise_for_status()


def refunds(emulator: httpx.Client, number: str) -> list[dict[str, Any]]:
    return [
        r
        for r in emulator.get("/sandbox/refunds").json()["refunds"]
        if r["out_refund_no"] == number
    ]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within 5 s")


async def _with_route(account: WeChatPayAccount, url: str, work: Any, **kw: Any) -> Any:
    route = PROVIDER.route(account, url) if not kw else WeChatPayRoute(account, url, **kw)
    try:
        return await work(route)
    finally:
        await route.close()


def test_a_refund_is_paid_once_and_a_retry_pays_nothing_twice(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    o = order(12900)

    async def twice(route: WeChatPayRoute) -> tuple[Any, Any]:
        return await route.refund(o), await route.refund(o)

    first, second = run(_with_route(account, receiver.url, twice))
    assert first.status == second.status == "success"
    assert first.amount == 12900 and first.currency == "CNY"
    assert first.provider_reference == second.provider_reference
    assert len(refunds(emulator, o.merchant_refund_no)) == 1
    taken = wait_for(lambda: receiver.taken)
    assert taken[0].merchant_refund_no == o.merchant_refund_no
    assert taken[0].receipt.status == "success" and taken[0].receipt.amount == 12900
    assert taken[0].callback_id.startswith("EV-")


def test_the_payment_total_is_asked_for_when_not_known_and_overrefunds_are_refused(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    emulator.post("/sandbox/payments", json={"out_trade_no": "ORDER-TOTAL-1", "total": 5000})

    async def both(route: WeChatPayRoute) -> Any:
        paid = await route.refund(order(3000, "ORDER-TOTAL-1"))
        with pytest.raises(PermanentProviderError, match="INVALID_REQUEST"):
            await route.refund(order(2001, "ORDER-TOTAL-1"))
        return paid

    paid = run(_with_route(account, receiver.url, both))
    assert paid.status == "success"
    assert [r["amount"]["total"] for r in emulator.get("/sandbox/refunds").json()["refunds"]] == [
        5000
    ]


def test_a_timeout_after_commit_is_resolved_by_query_not_a_second_refund(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    control(emulator, timeout_after_commit_next=1, timeout_ms=1500)
    o = order(700)

    async def flow(route: WeChatPayRoute) -> Any:
        with pytest.raises(TransientProviderError, match="unreachable"):
            await route.refund(o)
        return await route.query(o)

    found = run(_with_route(account, receiver.url, flow, timeout=0.5))
    assert found is not None and found.status == "success" and found.amount == 700
    assert len(refunds(emulator, o.merchant_refund_no)) == 1


def test_an_unknown_number_queries_as_none(account: WeChatPayAccount, receiver: Receiver) -> None:
    async def ask(route: WeChatPayRoute) -> Any:
        return await route.query(order())

    assert run(_with_route(account, receiver.url, ask)) is None


def test_processing_is_settled_by_the_callback_and_by_the_query(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    control(emulator, processing_ms=400)
    o = order(100)

    async def flow(route: WeChatPayRoute) -> Any:
        first = await route.refund(o)
        assert first.status == "processing"
        await asyncio.sleep(0.6)
        return await route.query(o)

    later = run(_with_route(account, receiver.url, flow))
    assert later.status == "success" and later.executed_at is not None
    assert wait_for(lambda: receiver.taken)[0].receipt.status == "success"


def test_failures_are_mapped(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    control(emulator, system_error_next=1, frequency_limited_next=1, not_enough_next=1)

    async def flow(route: WeChatPayRoute) -> None:
        o = order(100)
        with pytest.raises(TransientProviderError, match="500"):
            await route.refund(o)
        with pytest.raises(TransientProviderError, match="429") as limited:
            await route.refund(o)
        assert limited.value.retry_after == 1.0
        with pytest.raises(PermanentProviderError, match="NOT_ENOUGH") as low:
            await route.refund(o)
        assert low.value.receipt is None
        control(emulator, abnormal_next=1, closed_next=1)
        with pytest.raises(PermanentProviderError) as closed:
            await route.refund(order(100))
        assert closed.value.receipt is not None and closed.value.receipt.status == "closed"
        abnormal_order = order(100)
        with pytest.raises(PermanentProviderError) as abnormal:
            await route.refund(abnormal_order)
        receipt = abnormal.value.receipt
        assert receipt is not None and receipt.status == "abnormal"
        healed = await route.apply_abnormal_refund(
            receipt.provider_reference,
            abnormal_order.merchant_refund_no,
            to="USER_BANK_CARD",
            bank_type="ICBC_DEBIT",
            bank_account="6212260000000000",
            real_name="张三",
        )
        assert healed.status == "success"
        with pytest.raises(PermanentProviderError, match="CNY"):
            await route.refund(
                order(100).__class__(**{**vars(order(100)), "amount": Money(100, "USD")})
            )

    run(_with_route(account, receiver.url, flow))


def test_a_foreign_signature_on_answers_is_not_believed(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    # An account that knows only another platform key: every answer is unverifiable.
    other = dev_account(str(emulator.base_url))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other["platform_public_key"] = stranger.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    del other["platform_certificate"]
    o = order(100)

    async def flow(route: WeChatPayRoute) -> None:
        with pytest.raises(TransientProviderError, match="not signed"):
            await route.refund(o)

    run(_with_route(WeChatPayAccount(**other), receiver.url, flow))


def test_our_signature_refused_is_sign_error(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    wrong = account.model_copy(update={"merchant_serial_no": "ABCDEF"})

    async def flow(route: WeChatPayRoute) -> None:
        with pytest.raises(PermanentProviderError, match="SIGN_ERROR"):
            await route.refund(order(100, payment_amount=Money(5000, "CNY")))

    run(_with_route(wrong, receiver.url, flow))


def test_signtest_probes_and_missigned_callbacks_are_refused(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    control(emulator, signtest_next=1, missigned_callbacks_next=1, callback_max_attempts=2)

    async def flow(route: WeChatPayRoute) -> None:
        await route.refund(order(100))  # probe, then the genuine one
        await route.refund(order(200))  # mis-signed on every attempt

    run(_with_route(account, receiver.url, flow))
    wait_for(lambda: len(receiver.refused) >= 3 and receiver.taken)
    assert [n.receipt.amount for n in receiver.taken] == [100]
    assert set(receiver.refused) == {"bad-signature"}


def test_the_bill_lists_the_days_refunds_in_exact_fen(
    emulator: httpx.Client, account: WeChatPayAccount, receiver: Receiver
) -> None:
    numbers = [order(12345), order(1), order(999999)]

    async def flow(route: WeChatPayRoute) -> None:
        for o in numbers:
            await route.refund(o)

    run(_with_route(account, receiver.url, flow))
    day = datetime.now(UTC) + timedelta(hours=8)
    lines = run(_download_bill(account, day.date().isoformat()))
    assert [(line.merchant_refund_no, line.amount, line.status) for line in lines] == [
        (o.merchant_refund_no, o.amount.amount, "success") for o in numbers
    ]
    assert all(line.completed_at.endswith("+08:00") for line in lines)


async def _download_bill(account: WeChatPayAccount, day: str) -> Any:
    import hashlib

    route = WeChatPayRoute(account, "http://127.0.0.1:9/unused")
    try:
        info = await route._call(
            "GET", f"/v3/bill/tradebill?bill_date={day}&bill_type=REFUND", None, "bill"
        )
        url = httpx.URL(info["download_url"])
        target = url.raw_path.decode()
        from services.payout.providers.wechatpay import signing

        headers = {
            "Authorization": signing.authorization(
                mchid=account.mchid,
                serial_no=account.merchant_serial_no,
                private_key=account.private_key(),
                method="GET",
                target=target,
                body=b"",
                timestamp=str(int(time.time())),
                nonce=signing.new_nonce(),
            )
        }
        async with httpx.AsyncClient() as client:
            data = (await client.get(str(url), headers=headers)).content
        assert hashlib.sha1(data).hexdigest() == info["hash_value"]  # noqa: S324
        return PROVIDER.parse_settlement(data)
    finally:
        await route.close()
