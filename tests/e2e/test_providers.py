"""The dev tenant's own Stripe, Alipay and WeChat Pay accounts, end to end (issue 18): a refund
by card, Alipay or WeChat Pay is paid once at the provider's emulator — also when the answer
is lost after the money moved, and when payout is killed with the request in flight — and the
provider's callbacks are verified: a forged one is refused, a replayed one changes nothing.

One stack for the module (PostgreSQL, `dev_providers=True`); each scenario runs the three
providers at once, so a stall or a kill is waited for once, not three times.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from refunds.devstack import Stack
from shared.auth import DEV_TENANT
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.e2e.emulators import ANSWER, CLIENT_TIMEOUT_S, PROVIDER_TIMEOUT_S, Emulator
from tests.e2e.support import Platform
from tests.support.factories import refund_body
from tests.support.ports import stack_ports
from tests.support.postgres import drop_schemas

pytestmark = [pytest.mark.e2e]

PROVIDERS = ("stripe", "alipay", "wechatpay")
FINAL_WAIT_S = 60.0


@dataclass
class Case:
    """One refund sent through one provider, as it ended."""

    provider: str
    reference: str
    amount: int
    refund: dict[str, Any]
    payout: dict[str, Any]

    @property
    def number(self) -> str:
        dispatches = self.payout["dispatches"]
        assert len(dispatches) == 1, dispatches
        assert dispatches[0]["provider"] == self.provider, dispatches
        return str(dispatches[0]["merchant_refund_no"])

    def history(self) -> list[str]:
        return [entry["type"] for entry in self.payout["history"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stack]:
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    pool = {"REFUNDS_DATABASE_POOL_SIZE": "2", "REFUNDS_DATABASE_MAX_OVERFLOW": "2"}
    started = time.monotonic()
    try:
        with Stack(
            tmp_path_factory.mktemp("providers"),
            stack_ports(),
            database_url=postgres_url,
            schema_prefix=prefix,
            extra_env={**pool, "REFUNDS_PROVIDER_TIMEOUT_S": str(PROVIDER_TIMEOUT_S)},
            dev_providers=True,
        ) as running:
            print(f"\nstack with the three emulators up in {time.monotonic() - started:.1f}s")
            yield running
    finally:
        drop_schemas(postgres_url, prefix)


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Platform]:
    p = Platform(stack.url("intake"), stack.url("gateway"), stack.data_dir)
    yield p
    p.close()


@pytest.fixture(scope="module")
def emulators(stack: Stack) -> dict[str, Emulator]:
    return {name: Emulator(name, stack) for name in PROVIDERS}


def staff_headers() -> dict[str, str]:
    token = encode(staff_claims("e2e-providers", ["admin"], 600), DEV_JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


def payout_view(stack: Stack, refund_id: str) -> dict[str, Any]:
    base, headers = stack.url("payout"), staff_headers()
    listed = httpx.get(f"{base}/v1/payouts", params={"refund_id": refund_id}, headers=headers)
    assert listed.status_code == 200, listed.text
    (entry,) = listed.json()["data"]
    one = httpx.get(f"{base}/v1/payouts/{entry['id']}", headers=headers)
    assert one.status_code == 200, one.text
    return dict(one.json())


def run(
    stack: Stack,
    platform: Platform,
    emulators: dict[str, Emulator],
    amount: int,
    while_in_flight: Callable[[dict[str, str]], None] | None = None,
) -> dict[str, Case]:
    """A refund per provider (each from a new customer, a new payment), waited for to the end.
    `while_in_flight` gets provider → payment reference once all were submitted."""
    references = {name: emulators[name].new_reference() for name in PROVIDERS}
    ids: dict[str, str] = {}
    for name in PROVIDERS:
        body = refund_body(amount)
        body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
        body["order"]["payment"] = {"method": emulators[name].method, "reference": references[name]}
        ids[name] = platform.request_refund(amount, body=body)
    if while_in_flight is not None:
        while_in_flight(references)
    finals = platform.wait_final(list(ids.values()), timeout=FINAL_WAIT_S)
    return {
        name: Case(name, references[name], amount, finals[ids[name]], payout_view(stack, ids[name]))
        for name in PROVIDERS
    }


def assert_paid_once(case: Case, emulator: Emulator) -> None:
    assert case.refund["status"] == "paid", (case.refund, case.payout)
    # The emulator's own record: one refund of that payment, under our number, for the amount.
    assert emulator.refunds(case.reference) == [(case.number, case.amount)]
    assert case.payout["status"] == "paid"
    assert case.history().count("Succeeded") == 1, case.history()


def timed(what: str, scenario: Callable[[], dict[str, Case]]) -> dict[str, Case]:
    started = time.monotonic()
    cases = scenario()
    print(f"\n{what}: {time.monotonic() - started:.1f}s for {', '.join(PROVIDERS)}")
    return cases


# -- paid once ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paid(stack: Stack, platform: Platform, emulators: dict[str, Emulator]) -> dict[str, Case]:
    return timed("plain refunds", lambda: run(stack, platform, emulators, 1234))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refund_is_paid_once_at_the_provider(
    provider: str, paid: dict[str, Case], emulators: dict[str, Emulator]
) -> None:
    case = paid[provider]
    assert_paid_once(case, emulators[provider])
    history = case.history()
    assert "AttemptFailed" not in history and history.count("Dispatched") == 1, history


# -- a timeout after the money moved ----------------------------------------------------------


@pytest.fixture(scope="module")
def timed_out(stack: Stack, platform: Platform, emulators: dict[str, Emulator]) -> dict[str, Case]:
    for name in PROVIDERS:
        # The refund is made, then the answer stalls past payout's own timeout; its
        # callback is lost, so only payout's status query can tell the money moved.
        stall_ms = int((CLIENT_TIMEOUT_S[name] + 1.5) * 1000)
        emulators[name].control(timeout_after_commit_next=1, timeout_ms=stall_ms)
        emulators[name].drop_callbacks()
    return timed("timeout after commit", lambda: run(stack, platform, emulators, 2345))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_timeout_after_the_money_moved_is_resolved_by_the_query(
    provider: str,
    timed_out: dict[str, Case],
    emulators: dict[str, Emulator],
) -> None:
    case = timed_out[provider]
    assert_paid_once(case, emulators[provider])
    history = case.history()
    assert "AttemptFailed" in history, history  # payout did see the timeout
    assert history.count("Dispatched") == 1, history
    assert history.index("AttemptFailed") < history.index("Succeeded"), history


# -- kill -9 between request and record -------------------------------------------------------


@pytest.fixture(scope="module")
def killed(stack: Stack, platform: Platform, emulators: dict[str, Emulator]) -> dict[str, Case]:
    for name in PROVIDERS:
        # Slow answers (shorter than payout's timeout): payout dies while it waits for them.
        # The callbacks are lost: the restarted payout must find the refunds by querying.
        emulators[name].control(timeout_after_commit_next=1, timeout_ms=4000)
        emulators[name].drop_callbacks()

    def kill_when_all_are_in_flight(references: dict[str, str]) -> None:
        deadline = time.monotonic() + FINAL_WAIT_S
        while not all(emulators[n].refunds(references[n]) for n in PROVIDERS):
            assert time.monotonic() < deadline, "the refunds never reached the emulators"
            time.sleep(0.1)
        stack.kill("payout")
        stopped = time.monotonic()
        stack.start("payout")
        print(
            f"\npayout killed with 3 answers outstanding, back in {time.monotonic() - stopped:.1f}s"
        )

    return timed(
        "kill -9 of payout in flight",
        lambda: run(stack, platform, emulators, 3456, while_in_flight=kill_when_all_are_in_flight),
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_kill_9_of_payout_in_flight_pays_once(
    provider: str,
    killed: dict[str, Case],
    emulators: dict[str, Emulator],
) -> None:
    case = killed[provider]
    assert_paid_once(case, emulators[provider])
    # Sent once before the kill; the restarted executor asked before it would send again.
    assert case.history().count("Dispatched") == 1, case.history()


# -- callbacks ------------------------------------------------------------------------------


def callback(stack: Stack, provider: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    url = f"{stack.url('payout')}/v1/providers/{provider}/{DEV_TENANT}/callbacks"
    return httpx.post(url, content=body, headers=headers, timeout=10)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_forged_callbacks_are_refused_and_replays_change_nothing(
    provider: str, stack: Stack, paid: dict[str, Case], emulators: dict[str, Emulator]
) -> None:
    case, emulator = paid[provider], emulators[provider]
    deadline = time.monotonic() + 30
    while not emulator.delivered(case.number):  # the genuine one came and was taken
        assert time.monotonic() < deadline, f"{provider} never delivered its callback"
        time.sleep(0.2)
    before = payout_view(stack, case.refund["id"])["history"]

    forged = callback(stack, provider, *emulator.forged_callback(case.number))
    assert 400 <= forged.status_code < 500, forged.text
    assert forged.headers["content-type"].startswith("application/problem+json"), forged.text
    assert forged.json()["type"].endswith("/callback-bad-signature"), forged.text
    assert payout_view(stack, case.refund["id"])["history"] == before

    status, body = ANSWER[provider]
    for _ in range(2):  # a replay, and a replay of the replay
        replayed = callback(stack, provider, *emulator.genuine_callback(case.number))
        assert (replayed.status_code, replayed.content) == (status, body), replayed.text
    after = payout_view(stack, case.refund["id"])
    assert after["history"] == before
    assert [h["type"] for h in after["history"]].count("Succeeded") == 1
    assert emulator.refunds(case.reference) == [(case.number, case.amount)]
