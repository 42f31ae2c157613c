"""WeChat Pay's abnormal refund as finance's action, through payout's staff API served by
uvicorn and the WeChat Pay emulator: a payout failed ABNORMAL is re-routed to a bank card and
ends paid once (the answer, the callback and the poller all agree); what is refused is 409/422
and stores nothing; a replay sends nothing twice; the card number is never stored."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from refunds.cli import main
from sandbox.wechatpay import create_app, dev_account
from services.payout.adapters import Routes
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.domain import Payout
from services.payout.executor import PayoutExecutor, RetryPolicy
from services.payout.poller import StatusPoller
from services.payout.providers.registry import PROVIDERS
from services.payout.providers.store_balance import StoreBalanceRoute
from services.payout.settings import PayoutSettings
from services.payout.tenant_providers import TenantProviders
from shared.contracts import MoneyModel, PaymentRoute, ReviewApprovedV1, envelope
from shared.ids import public_id
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.support.sandbox_gateway import serving

SECRET = "abnormal-refund-test-secret-012345"
TENANT = "acme"
CARD = "6222021234567890123"
_positions = itertools.count(1)


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), SECRET)}"}


FIN = staff("zhao", "finance")
AUDITOR = staff("al", "auditor")


@dataclass
class World:
    app: PayoutApplication
    api: httpx.Client
    emulator: httpx.Client
    providers: TenantProviders

    def approve(self, method: str = "wechat_pay", amount: int = 12900) -> Payout:
        event = ReviewApprovedV1(
            refund_id=f"rf_{uuid.uuid4().hex}",
            tenant=TENANT,
            order_id="ORD-1",
            amount=MoneyModel(amount=amount, currency="CNY"),
            payment=PaymentRoute(method=method, reference=f"ORD{uuid.uuid4().hex[:20]}"),  # type: ignore[arg-type]
            policy_version="v1",
            rule="auto.small_amount",
            decided_by="policy",
            decided_at=datetime.now(UTC),
        )
        message = envelope(
            event,
            source="review",
            event_id=str(uuid.uuid4()),
            position=next(_positions),
            time=datetime.now(UTC),
            causation_id=None,
        )
        assert self.app.handle(message)
        return self.app.payout(Payout.create_id(message.id))

    def execute(self, payout: Payout) -> Payout:
        """The executor sends it to the tenant's WeChat Pay account (its own HTTP clients)."""

        async def run() -> None:
            tenants = TenantProviders(
                self.app, self.providers.keystore, PROVIDERS, self.providers.public_url
            )
            routes = Routes(
                StoreBalanceRoute(self.app), StoreBalanceRoute(self.app), tenants=tenants
            )
            executor = PayoutExecutor(self.app, routes, policy=RetryPolicy(max_attempts=1))
            try:
                await executor.execute(payout.id, asyncio.Event())
            finally:
                await tenants.close()

        asyncio.run(run())
        return self.app.payout(payout.id)

    def abnormal(self) -> Payout:
        self.control(abnormal_next=1)
        payout = self.execute(self.approve())
        assert payout.status == "failed" and payout.abnormal_refund_allowed
        return payout

    def control(self, **switches: Any) -> None:
        self.emulator.post("/sandbox/control", json=switches).raise_for_status()

    def refunds(self, number: str) -> list[dict[str, Any]]:
        listed = self.emulator.get("/sandbox/refunds").json()["refunds"]
        return [r for r in listed if r["out_refund_no"] == number]

    def post(self, payout: Payout, body: dict[str, Any], **headers: str) -> httpx.Response:
        url = f"/v1/payouts/{public_id('po', payout.id)}/abnormal-refund"
        return self.api.post(url, json=body, headers={**FIN, **headers})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = PayoutSettings(env="test", data_dir=tmp_path, jwt_secret=SECRET)
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = http_api(app, settings)
    providers: TenantProviders = http.state.tenant_providers
    try:
        with (
            serving(create_app(tmp_path / "wechat")) as wechat_url,
            serving(http) as payout_url,
            httpx.Client(base_url=wechat_url, timeout=10) as emulator,
            httpx.Client(base_url=payout_url, timeout=20) as api,
        ):
            emulator.post(
                "/sandbox/control", json={"signtest_ratio": 0, "callback_retry_ms": 100}
            ).raise_for_status()
            providers.public_url = payout_url  # WeChat Pay's callbacks reach this payout
            providers.configure(TENANT, "wechatpay", dev_account(wechat_url), actor="root")
            yield World(app, api, emulator, providers)
    finally:
        app.close()


def wait_for(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def test_a_users_card_gets_the_money_once_and_only_a_masked_account_is_kept(
    world: World,
) -> None:
    payout = world.abnormal()
    number = payout.number
    assert [r["status"] for r in world.refunds(number)] == ["ABNORMAL"]
    body = {
        "type": "USER_BANK_CARD",
        "bank_type": "ICBC_DEBIT",
        "bank_account": CARD,
        "real_name": "张三",
    }
    first = world.post(payout, body, **{"Idempotency-Key": "abn-1"})
    assert first.status_code == 200, first.text
    view = first.json()
    assert view["status"] == "paid" and view["merchant_refund_no"] == number
    action = view["actions"][-1]
    assert action == {
        "action": "abnormal_refund",
        "actor": "zhao",
        "at": action["at"],
        "type": "USER_BANK_CARD",
        "bank_type": "ICBC_DEBIT",
        "account": "****0123",
    }
    assert [e["type"] for e in view["history"]][-2:] == ["AbnormalRefundRequested", "Succeeded"]
    assert CARD not in first.text and "张三" not in first.text
    stored = repr([vars(e) for e in world.app.history(payout.id)])
    assert CARD not in stored and "张三" not in stored
    assert [r["status"] for r in world.refunds(number)] == ["SUCCESS"]

    # The same key replays the first answer and asks WeChat Pay nothing again.
    again = world.post(payout, body, **{"Idempotency-Key": "abn-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == view
    # Another card under the same key is another request: a conflict.
    other = world.post(
        payout, {**body, "bank_account": "6222020000000009999"}, **{"Idempotency-Key": "abn-1"}
    )
    assert other.status_code == 409 and other.json()["type"].endswith("idempotency-conflict")

    # WeChat Pay's callbacks (the ABNORMAL one and the SUCCESS one) arrive: nothing more.
    def delivered() -> bool:
        notes = world.emulator.get("/sandbox/notifications").json()["notifications"]
        mine = [n for n in notes if n.get("out_refund_no") == number]
        return len(mine) == 2 and all(n["state"] == "delivered" for n in mine)

    wait_for(delivered)
    history = [type(e).__name__ for e in world.app.history(payout.id)]
    assert history.count("Succeeded") == 1
    assert world.app.payout(payout.id).status == "paid"


def poll(world: World) -> int:
    """One round of the poller (its own HTTP clients), querying every processing payout."""

    async def run() -> int:
        tenants = TenantProviders(world.app, world.providers.keystore, PROVIDERS, "http://x")
        balance = StoreBalanceRoute(world.app)
        poller = StatusPoller(world.app, Routes(balance, balance, tenants=tenants), after_s=0)
        try:
            return await poller.poll_once()
        finally:
            await tenants.close()

    return asyncio.run(run())


def test_a_request_whose_answer_was_lost_is_settled_by_the_poller_once(world: World) -> None:
    payout = world.abnormal()
    # Recorded, then the request reaches WeChat Pay but its answer never comes back.
    world.app.request_abnormal_refund(payout.id, actor="zhao", target="MERCHANT_BANK_CARD")
    world.control(drop_callbacks_next=5)
    refund_id = world.refunds(payout.number)[0]["refund_id"]

    async def apply() -> None:
        route = PROVIDERS["wechatpay"].route(
            PROVIDERS["wechatpay"].account(**dev_account(str(world.emulator.base_url))), "http://x"
        )
        try:
            await route.apply_abnormal_refund(refund_id, payout.number)
        finally:
            await route.close()

    asyncio.run(apply())
    assert world.app.payout(payout.id).status == "processing"
    assert poll(world) == 1
    assert poll(world) == 0  # no longer watched: settled
    paid = world.app.payout(payout.id)
    assert paid.status == "paid"
    assert [type(e).__name__ for e in world.app.history(payout.id)].count("Succeeded") == 1


def test_a_request_that_never_reached_wechat_fails_again_and_may_be_asked_again(
    world: World,
) -> None:
    payout = world.abnormal()
    world.app.request_abnormal_refund(payout.id, actor="zhao", target="MERCHANT_BANK_CARD")
    assert poll(world) == 1  # WeChat Pay still says ABNORMAL
    again = world.app.payout(payout.id)
    assert again.status == "failed" and again.abnormal_refund_allowed
    answer = world.post(again, {"type": "MERCHANT_BANK_CARD"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "paid"


def test_what_is_refused_stores_nothing(world: World) -> None:
    paid = world.execute(world.approve())
    assert paid.status == "paid"
    refused = world.post(paid, {"type": "MERCHANT_BANK_CARD"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("payout-action-refused")
    assert refused.headers["content-type"].startswith("application/problem+json")

    payout = world.abnormal()
    version = payout.version
    for body, field in (
        ({"type": "USER_BANK_CARD"}, "bank_type"),
        ({"type": "USER_BANK_CARD", "bank_type": "ICBC_DEBIT", "real_name": "x"}, "bank_account"),
        ({"type": "MERCHANT_BANK_CARD", "bank_account": CARD}, "bank_account"),
        (
            {
                "type": "USER_BANK_CARD",
                "bank_type": "ICBC_DEBIT",
                "bank_account": "12ab",
                "real_name": "x",
            },
            "bank_account",
        ),
        ({"type": "SOMEWHERE"}, "type"),
    ):
        answer = world.post(payout, body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text and "12ab" not in answer.text
    auditor = world.api.post(
        f"/v1/payouts/{public_id('po', payout.id)}/abnormal-refund",
        json={"type": "MERCHANT_BANK_CARD"},
        headers=AUDITOR,
    )
    assert auditor.status_code == 403
    assert world.app.payout(payout.id).version == version
    # Refusals stored nothing, so the payout may still be re-routed.
    answer = world.post(
        payout,
        {
            "type": "USER_BANK_CARD",
            "bank_type": "ICBC_DEBIT",
            "bank_account": CARD,
            "real_name": "张三",
        },
    )
    assert answer.status_code == 200 and answer.json()["status"] == "paid"


def test_the_cli_reads_the_card_from_stdin_and_exits_0_when_paid(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    payout = world.abnormal()
    token = FIN["Authorization"].removeprefix("Bearer ")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{CARD}\n张三\n"))
    args = ["payouts", "abnormal-refund", public_id("po", payout.id), "--type", "USER_BANK_CARD"]
    url = ["--url", str(world.api.base_url).rstrip("/"), "--token", token]
    assert main([*args, *url]) == 2  # no --bank-type
    assert "--bank-type" in capsys.readouterr().err
    assert main([*args, "--bank-type", "ICBC_DEBIT", *url]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{public_id('po', payout.id)}: paid" and CARD not in out
    assert world.app.payout(payout.id).actions[-1]["account"] == "****0123"
    # Asked again: the payout is paid, so payout refuses (409) and the CLI exits 2.
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{CARD}\n张三\n"))
    assert main([*args, "--bank-type", "ICBC_DEBIT", *url]) == 2
    assert "HTTP 409" in capsys.readouterr().err
