"""`POST /v1/reconciliations/fetch` in-process against the Alipay emulator (uvicorn on a free
127.0.0.1 port): payout fetches acme's own bills covering the day and reconciles them like an
upload: refunds it paid are matched, one it paid that the provider does not list is
`missing_at_provider`; the same bills again answer the same report; a provider that fails is
a 502 naming it; a tenant without the account is a 404; `refunds payouts reconcile --fetch`
drives the same route."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from refunds.cli import main
from sandbox.alipay import create_app
from sandbox.alipay import dev_keys as alipay_keys
from sandbox.stripe import dev_keys as stripe_keys
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.domain import Payout
from services.payout.providers.alipay import AlipayAccount, AlipayRoute
from services.payout.providers.base import RefundOrder
from services.payout.settings import PayoutSettings
from shared.money import Money
from shared.store import store_env
from tests.integration.test_alipay_route import serving
from tests.integration.test_payout_api import ADMIN, FIN, SECRET, Payouts

FETCH = "/v1/reconciliations/fetch"


@dataclass
class Stack:
    client: TestClient
    payouts: Payouts
    alipay: str  # the emulator's base URL

    def fetch(self, provider: str = "alipay", tenant: str = "acme") -> Any:
        day = datetime.now(UTC).date().isoformat()
        body = {"provider": provider, "tenant": tenant, "day": day}
        return self.client.post(FETCH, json=body, headers=FIN)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    settings = PayoutSettings(env="test", data_dir=tmp_path, jwt_secret=SECRET)
    app = PayoutApplication(env=store_env(settings, "payout"))
    try:
        with (
            serving(create_app(tmp_path / "alipay")) as url,
            TestClient(http_api(app, settings)) as client,
        ):
            put = client.put(
                "/v1/admin/tenants/acme/providers/alipay",
                json=alipay_keys.dev_account(url),
                headers=ADMIN,
            )
            assert put.status_code == 201, put.text
            yield Stack(client, Payouts(client, app), url)
    finally:
        app.close()


def paid_through_alipay(stack: Stack, amount: int, *, at_provider: bool = True) -> Payout:
    """A payout of acme's paid through its Alipay account now; refunded at the emulator under
    the payout's number unless `at_provider` is false (a payout the provider never made)."""
    app = stack.payouts.app
    payout = stack.payouts.approve(method="alipay", amount=amount)
    now = datetime.now(UTC)
    app.record_dispatch(payout.id, now, provider="alipay")
    paid = app.record_success(payout.id, f"al_{uuid.uuid4().hex[:8]}", now)
    if at_provider:
        asyncio.run(_refund(stack.alipay, paid.number, amount))
    return paid


async def _refund(url: str, number: str, amount: int) -> None:
    route = AlipayRoute(AlipayAccount(**alipay_keys.dev_account(url)), "")
    try:
        order = RefundOrder(number, "r-1", "acme", Money(amount, "CNY"), "alipay", "order-77")
        assert (await route.refund(order)).status == "success"
    finally:
        await route.close()


def test_a_fetched_bill_is_reconciled_once_like_an_upload(stack: Stack) -> None:
    first = paid_through_alipay(stack, 4200)
    second = paid_through_alipay(stack, 9900)
    absent = paid_through_alipay(stack, 1500, at_provider=False)

    answer = stack.fetch()
    assert answer.status_code == 201, answer.text
    report = answer.json()
    kinds = {f["merchant_refund_no"]: f["kind"] for f in report["findings"]}
    assert kinds == {
        first.number: "matched",
        second.number: "matched",
        absent.number: "missing_at_provider",
    }
    assert (report["provider"], report["tenant"]) == ("alipay", "acme")

    again = stack.fetch()  # the bills are unchanged: the first report
    assert again.status_code == 200, again.text
    assert again.json()["id"] == report["id"]


def test_a_tenant_without_the_account_is_a_404(stack: Stack) -> None:
    for provider, tenant in (("alipay", "globex"), ("wechatpay", "acme")):
        answer = stack.fetch(provider, tenant)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    unknown = stack.fetch("paypal")
    assert unknown.status_code == 422 and "provider" in unknown.text


def test_a_provider_failure_is_a_502_naming_it(stack: Stack) -> None:
    down = stripe_keys.dev_account("http://127.0.0.1:9")  # nothing listens there
    put = stack.client.put("/v1/admin/tenants/acme/providers/stripe", json=down, headers=ADMIN)
    assert put.status_code == 201, put.text
    answer = stack.fetch("stripe")
    assert answer.status_code == 502, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"].startswith("stripe:")
    listed = stack.client.get("/v1/reconciliations", headers=FIN).json()["data"]
    assert listed == []  # nothing was recorded


def test_the_cli_fetches_and_reconciles(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paid = paid_through_alipay(stack, 4200)
    monkeypatch.setattr("httpx.post", stack.client.post)
    day = datetime.now(UTC).date().isoformat()
    token = FIN["Authorization"].removeprefix("Bearer ")
    args = ["payouts", "reconcile", "--fetch", "alipay", "--tenant", "acme", "--day", day]
    code = main([*args, "--url", "http://testserver", "--token", token])
    out = capsys.readouterr().out
    assert code == 0, out
    assert paid.number in out and "matched 1" in out
    assert main(["payouts", "reconcile", "--fetch", "alipay", "--day", day]) == 2
