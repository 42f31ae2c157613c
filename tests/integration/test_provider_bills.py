"""Each provider's bill fetched by its route from the emulator (uvicorn on a free 127.0.0.1
port): a few refunds made through the route come back as the bill's lines of the day; a
WeChat Pay bill whose bytes do not match the SHA1 of the signed answer, and an Alipay answer
whose signature does not hold, are refused; a day without refunds is an empty bill."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.alipay import create_app as alipay_app
from sandbox.alipay import dev_keys as alipay_keys
from sandbox.stripe import create_app as stripe_app
from sandbox.stripe import dev_keys as stripe_keys
from sandbox.wechatpay import create_app as wechat_app
from sandbox.wechatpay import dev_keys as wechat_keys
from services.payout.bills import bill_days, lines_of_day
from services.payout.providers.alipay import AlipayAccount, AlipayRoute
from services.payout.providers.base import (
    BillSource,
    PermanentProviderError,
    RefundOrder,
    SettlementLine,
    TransientProviderError,
)
from services.payout.providers.registry import PROVIDERS
from services.payout.providers.stripe import StripeAccount, StripeRoute
from services.payout.providers.wechatpay.account import WeChatPayAccount
from services.payout.providers.wechatpay.client import WeChatPayRoute
from shared.money import Money
from tests.integration.test_alipay_route import serving

NOTIFY = "http://127.0.0.1:9/notify"  # never reached: the emulators retry in the background
METHODS = {"stripe": "card", "alipay": "alipay", "wechatpay": "wechat_pay"}


class Tampering(httpx.AsyncBaseTransport):
    """Real HTTP to the emulator, with the body of answers to `path` changed by `change`:
    a man in the middle between payout and the provider."""

    def __init__(self, path: str, change: Callable[[bytes], bytes]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = path
        self.change = change

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if request.url.path.startswith(self.path):
            body = self.change(body)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def build(provider: str, url: str, **kw: Any) -> Any:
    if provider == "stripe":
        return StripeRoute(StripeAccount(**stripe_keys.dev_account(url)), "", **kw)
    if provider == "alipay":
        return AlipayRoute(AlipayAccount(**alipay_keys.dev_account(url)), NOTIFY, **kw)
    return WeChatPayRoute(WeChatPayAccount(**wechat_keys.dev_account(url)), NOTIFY, **kw)


@pytest.fixture
def emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    provider = request.param
    app = {
        "stripe": lambda: stripe_app(tmp_path, default_payment_currency="cny"),
        "alipay": lambda: alipay_app(tmp_path),
        "wechatpay": lambda: wechat_app(tmp_path),
    }[provider]()
    with serving(app) as url:
        if provider == "wechatpay":
            httpx.post(f"{url}/sandbox/control", json={"signtest_ratio": 0}).raise_for_status()
        yield url


def order(provider: str, amount: int) -> RefundOrder:
    reference = {"stripe": "pi_", "alipay": "order-", "wechatpay": "ORD"}[provider]
    return RefundOrder(
        merchant_refund_no=f"po_{uuid.uuid4().hex}",
        refund_id=str(uuid.uuid4()),
        tenant="acme",
        amount=Money(amount, "CNY"),
        method=METHODS[provider],
        payment_reference=reference + uuid.uuid4().hex[:20],
    )


async def fetched_lines(route: BillSource, provider: str) -> list[SettlementLine]:
    """The lines of today's (UTC) bills, as reconciliation reads them."""
    today = datetime.now(UTC).date()
    parse = PROVIDERS[provider].parse_settlement
    bills = [await route.bill(day) for day in bill_days(route.bill_zone, today)]
    return lines_of_day([line for bill in bills if bill for line in parse(bill)], today)


@pytest.mark.parametrize("emulator", list(METHODS), indirect=True)
async def test_each_provider_bill_lists_the_refunds_made(
    emulator: str, request: pytest.FixtureRequest
) -> None:
    provider = request.node.callspec.params["emulator"]
    route = build(provider, emulator)
    try:
        assert isinstance(route, BillSource)
        orders = [order(provider, amount) for amount in (1234, 50000, 7)]
        for each in orders:
            assert (await route.refund(each)).status == "success"
        lines = await fetched_lines(route, provider)
    finally:
        await route.close()
    got = {(line.merchant_refund_no, line.amount, line.currency, line.status) for line in lines}
    assert got == {(o.merchant_refund_no, o.amount.amount, "CNY", "success") for o in orders}
    assert {line.method for line in lines} == {METHODS[provider]}


@pytest.mark.parametrize("emulator", ["wechatpay"], indirect=True)
async def test_a_day_without_refunds_is_an_empty_wechat_bill(emulator: str) -> None:
    route = build("wechatpay", emulator)
    try:
        assert await route.bill(datetime(2020, 1, 1, tzinfo=UTC).date()) == b""
    finally:
        await route.close()


@pytest.mark.parametrize("emulator", ["wechatpay"], indirect=True)
async def test_a_wechat_bill_not_matching_its_signed_sha1_is_refused(emulator: str) -> None:
    made = build("wechatpay", emulator)
    try:
        await made.refund(order("wechatpay", 4200))
    finally:
        await made.close()
    forged = Tampering("/v3/billdownload/", lambda body: body.replace(b"42.00", b"24.00"))
    route = build("wechatpay", emulator, transport=forged)
    try:
        with pytest.raises(PermanentProviderError, match="SHA1"):
            await fetched_lines(route, "wechatpay")
    finally:
        await route.close()


@pytest.mark.parametrize("emulator", ["alipay"], indirect=True)
async def test_an_alipay_bill_answer_with_a_bad_signature_is_refused(emulator: str) -> None:
    # The download URL changed in transit: the signature over the answer no longer holds.
    forged = Tampering("/gateway.do", lambda body: body.replace(b"/bills/", b"/bilLs/"))
    route = build("alipay", emulator, transport=forged)
    try:
        with pytest.raises(TransientProviderError, match="signature"):
            await route.bill(datetime.now(UTC).date())
    finally:
        await route.close()


async def test_an_unreachable_provider_is_a_transient_error() -> None:
    route = build("stripe", "http://127.0.0.1:9", timeout=2.0)
    try:
        with pytest.raises(TransientProviderError):
            await route.bill(datetime.now(UTC).date())
    finally:
        await route.close()


def test_a_utc_day_maps_to_the_beijing_bills_that_cover_it() -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC).date()
    beijing = WeChatPayRoute.bill_zone
    assert [d.isoformat() for d in bill_days(beijing, day)] == ["2026-11-20", "2026-11-21"]
    assert bill_days(UTC, day) == [day]
