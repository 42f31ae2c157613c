"""Integration tests of the sandbox gateway's control switches: their defaults, validation
and reset, and the faults they inject: 5xx and 429 answers, a seeded share of calls
failing, answers lost after the commit, slow answers, timeouts before and after the money
moved, and refunds closed or abnormal for good."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.sandbox_gateway import (
    control,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    ledger_entries,
    refund,
    status_of,
)

DEFAULT_CONTROL: dict[str, Any] = {
    "fail_next": 0,
    "fail_status": 503,
    "retry_after_seconds": 1,
    "fail_after_commit_next": 0,
    "delay_ms": 0,
    "timeout_next": 0,
    "timeout_after_commit_next": 0,
    "timeout_ms": 6000,
    "close_next": 0,
    "close_reason": "ACCOUNT_CLOSED",
    "abnormal_next": 0,
    "abnormal_reason": "USER_ACCOUNT_ABNORMAL",
    "async_mode": False,
    "completion_delay_ms": 1000,
    "drop_callbacks_next": 0,
    "callback_max_attempts": 5,
    "callback_retry_ms": 1000,
    "settlement_extra_lines": 0,
    "settlement_amount_overrides": {},
    "settlement_status_overrides": {},
    "settlement_omit": [],
    "fail_ratio": 0.0,
    "fail_after_commit_ratio": 0.0,
    "timeout_after_commit_ratio": 0.0,
    "drop_callbacks_ratio": 0.0,
    "seed": None,
}


def test_control_defaults_changes_and_reset(gateway: httpx.Client) -> None:
    assert gateway.get("/control").json() == DEFAULT_CONTROL

    changed = control(gateway, async_mode=True, settlement_omit=["RF-1"], close_next=2)

    assert changed == {
        **DEFAULT_CONTROL,
        "async_mode": True,
        "settlement_omit": ["RF-1"],
        "close_next": 2,
    }
    assert gateway.get("/control").json() == changed
    assert control(gateway, reset=True) == DEFAULT_CONTROL


@pytest.mark.parametrize(
    "bad_switch",
    [
        {"async_mode": "yes"},
        {"close_reason": "closed account"},
        {"fail_status": 200},
        {"callback_max_attempts": 0},
        {"settlement_status_overrides": {"RF-1": "refunded"}},
        {"no_such_switch": 1},
        {"fail_ratio": 1.5},
        {"drop_callbacks_ratio": -0.1},
    ],
)
def test_invalid_switches_are_rejected(gateway: httpx.Client, bad_switch: dict[str, Any]) -> None:
    assert gateway.post("/control", json=bad_switch).status_code == 422
    assert gateway.get("/control").json() == DEFAULT_CONTROL


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fail_next_answers_5xx_and_records_nothing(gateway: httpx.Client, status: int) -> None:
    control(gateway, fail_next=1, fail_status=status)

    failed = gateway.post("/v1/refunds", json=refund())

    assert failed.status_code == status
    assert "Retry-After" not in failed.headers
    assert ledger_entries(gateway) == []
    assert gateway.get("/control").json()["fail_next"] == 0
    assert gateway.post("/v1/refunds", json=refund()).status_code == 200


def test_fail_ratio_fails_that_share_of_calls_repeatably_and_records_nothing_for_them(
    gateway: httpx.Client,
) -> None:
    def run() -> list[int]:
        control(gateway, fail_ratio=0.3, seed=7)
        return [
            gateway.post("/v1/refunds", json=refund(f"RF-{n:04d}")).status_code for n in range(60)
        ]

    first = run()
    failed = first.count(503)
    assert set(first) == {200, 503}
    assert 8 <= failed <= 30  # 30 % of 60, give or take three standard deviations
    assert len(ledger_entries(gateway)) == 60 - failed
    assert run() == first  # the same seed fails the same calls (replays answer alike)
    assert len(ledger_entries(gateway)) == 60 - failed
    control(gateway, fail_ratio=0.0)
    assert gateway.post("/v1/refunds", json=refund("RF-0000")).status_code == 200


def test_timeout_after_commit_ratio_moves_the_money_then_stalls(gateway: httpx.Client) -> None:
    control(gateway, timeout_after_commit_ratio=1.0, timeout_ms=300)
    started = time.monotonic()

    response = gateway.post("/v1/refunds", json=refund())

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert [e["merchant_refund_no"] for e in ledger_entries(gateway)] == ["RF-0001"]


def test_fail_next_with_429_sets_retry_after(gateway: httpx.Client) -> None:
    control(gateway, fail_next=2, fail_status=429)

    assert gateway.post("/v1/refunds", json=refund()).headers["Retry-After"] == "1"
    control(gateway, retry_after_seconds=30)
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert ledger_entries(gateway) == []
    assert control(gateway, reset=True)["fail_status"] == 503


def test_fail_after_commit_loses_the_answer_but_not_the_refund(gateway: httpx.Client) -> None:
    control(gateway, fail_after_commit_next=1)

    lost = gateway.post("/v1/refunds", json=refund())
    assert lost.status_code == 503
    [recorded] = ledger_entries(gateway)

    retry = gateway.post("/v1/refunds", json=refund())

    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["provider_reference"] == recorded["provider_reference"]
    assert len(ledger_entries(gateway)) == 1


def test_slow_answer_comes_after_the_delay(gateway: httpx.Client) -> None:
    control(gateway, delay_ms=300)

    started = time.monotonic()
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_without_moving_money(gateway: httpx.Client) -> None:
    control(gateway, timeout_next=2, timeout_ms=600)
    impatient = httpx.Client(base_url=gateway.base_url, timeout=0.2)

    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/refunds", json=refund())
    started = time.monotonic()
    patient = gateway.post("/v1/refunds", json=refund())

    assert patient.status_code == 504
    assert time.monotonic() - started >= 0.6
    assert patient.json() == {"error": "injected timeout: nothing was recorded"}
    assert ledger_entries(gateway) == []
    assert gateway.get("/v1/refunds/RF-0001").status_code == 404
    retry = gateway.post("/v1/refunds", json=refund())
    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry.headers


def test_timeout_after_moving_money(gateway: httpx.Client) -> None:
    control(gateway, timeout_after_commit_next=1, timeout_ms=600)
    impatient = httpx.Client(base_url=gateway.base_url, timeout=0.2)

    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/refunds", json=refund())

    [recorded] = ledger_entries(gateway)  # the money moved although the caller saw nothing
    assert status_of(gateway, "RF-0001") == "success"
    retry = gateway.post("/v1/refunds", json=refund())
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["provider_reference"] == recorded["provider_reference"]


@pytest.mark.parametrize(
    ("switches", "status", "reason"),
    [
        ({"close_next": 1}, "closed", "ACCOUNT_CLOSED"),
        ({"close_next": 1, "close_reason": "CARD_EXPIRED"}, "closed", "CARD_EXPIRED"),
        ({"abnormal_next": 1}, "abnormal", "USER_ACCOUNT_ABNORMAL"),
    ],
)
def test_permanent_failure_ends_the_refund(
    gateway: httpx.Client, switches: dict[str, Any], status: str, reason: str
) -> None:
    control(gateway, **switches)

    failed = gateway.post("/v1/refunds", json=refund())

    assert failed.status_code == 402
    body = failed.json()
    assert body["error"] == f"refund {status}: {reason}"
    assert body["status"] == status
    assert body["failure_reason"] == reason
    assert body["executed_at"] is None
    assert body["completed_at"] is not None
    assert body["arrival"] is None
    replay = gateway.post("/v1/refunds", json=refund())
    assert replay.status_code == 402
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == body
    queried = gateway.get("/v1/refunds/RF-0001")
    assert queried.status_code == 200
    assert queried.json() == {key: value for key, value in body.items() if key != "error"}
    assert ledger_entries(gateway) == []
    # The token was consumed: the next refund succeeds.
    assert gateway.post("/v1/refunds", json=refund("RF-0002")).status_code == 200
