"""Integration tests of the sandbox payment gateway's refunds in its synchronous default,
served for real by uvicorn: a merchant refund number recorded once and replayed, reused
with other parameters a conflict, concurrent posts making one row, invalid bodies refused,
the payout client against it, and each method's arrival estimate in business days."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import httpx
import pytest

from sandbox.gateway import LEDGER_COLUMNS, add_business_days
from services.payout.providers.gateway import (
    PermanentProviderError,
    SandboxGateway,
    TransientProviderError,
)
from tests.support.sandbox_gateway import (
    Receiver,
    callbacks,
    control,
    day_of,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    ledger_entries,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    refund,
)

# --- Idempotency and the synchronous default -------------------------------------------


def test_refund_is_recorded_once_and_listed_in_the_ledger(gateway: httpx.Client) -> None:
    response = gateway.post("/v1/refunds", json=refund())

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["provider_reference"].startswith("gw_")
    assert len(body["provider_reference"]) == 3 + 24
    assert body["executed_at"].endswith("Z")
    assert body["created_at"] == body["completed_at"] == body["executed_at"]
    assert body["failure_reason"] is None
    assert body["notify_url"] is None
    assert body["arrival"]["summary"] == "same day"
    assert "Idempotent-Replayed" not in response.headers
    [entry] = ledger_entries(gateway)
    assert entry == {column: body[column] for column in LEDGER_COLUMNS}
    assert gateway.get("/v1/refunds/RF-0001").json() == body
    assert gateway.get("/v1/refunds/RF-unknown").status_code == 404
    assert callbacks(gateway) == []


async def test_the_payout_client_works_against_the_default_mode(gateway: httpx.Client) -> None:
    client = SandboxGateway(str(gateway.base_url))
    try:
        receipt = await client.refund(
            merchant_refund_no="RF-payout",
            amount=500,
            currency="CNY",
            method="card",
            reference="pay_7",
        )
        [entry] = ledger_entries(gateway)
        assert receipt.provider_reference == entry["provider_reference"]
        assert receipt.executed_at == datetime.fromisoformat(entry["executed_at"])

        control(gateway, fail_next=1, fail_status=429, retry_after_seconds=3)
        with pytest.raises(TransientProviderError) as transient:
            await client.refund(
                merchant_refund_no="RF-payout-2",
                amount=500,
                currency="CNY",
                method="card",
                reference="pay_8",
            )
        assert transient.value.retry_after == 3.0

        control(gateway, close_next=1)
        with pytest.raises(PermanentProviderError, match="ACCOUNT_CLOSED"):
            await client.refund(
                merchant_refund_no="RF-payout-3",
                amount=500,
                currency="CNY",
                method="card",
                reference="pay_9",
            )
    finally:
        await client.close()


def test_repeated_number_replays_the_original_entry(gateway: httpx.Client) -> None:
    first = gateway.post("/v1/refunds", json=refund()).json()

    again = gateway.post("/v1/refunds", json=refund())

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert len(ledger_entries(gateway)) == 1


def test_reused_number_with_other_amount_is_a_conflict(gateway: httpx.Client) -> None:
    gateway.post("/v1/refunds", json=refund())

    response = gateway.post("/v1/refunds", json=refund(amount=999))

    assert response.status_code == 409
    assert response.json() == {"error": "merchant_refund_no reused with different parameters"}
    [entry] = ledger_entries(gateway)
    assert entry["amount"] == 1250


def test_notify_url_is_not_part_of_a_refunds_identity(
    gateway: httpx.Client, receiver: Receiver
) -> None:
    first = gateway.post("/v1/refunds", json=refund(notify_url=receiver.url)).json()

    again = gateway.post("/v1/refunds", json=refund(notify_url="http://elsewhere.invalid/x"))

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert again.json()["notify_url"] == receiver.url


def test_concurrent_posts_of_one_number_make_one_row(gateway: httpx.Client) -> None:
    # A small delay widens the window in which the requests overlap.
    control(gateway, delay_ms=100)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: gateway.post("/v1/refunds", json=refund()), range(8)))

    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["provider_reference"] for response in responses}) == 1
    assert sum("Idempotent-Replayed" in response.headers for response in responses) == 7
    assert len(ledger_entries(gateway)) == 1


@pytest.mark.parametrize(
    "bad_field",
    [
        {"amount": 12.5},
        {"amount": 1250.0},
        {"amount": True},
        {"amount": 0},
        {"currency": "cny"},
        {"method": "cash"},
        {"merchant_refund_no": "x" * 65},
        {"surprise": 1},
        {"notify_url": "ftp://merchant.example/notify"},
        {"notify_url": "merchant.example/notify"},
        {"notify_url": 42},
    ],
)
def test_invalid_body_is_rejected(gateway: httpx.Client, bad_field: dict[str, Any]) -> None:
    response = gateway.post("/v1/refunds", json=refund(**bad_field))

    assert response.status_code == 422
    assert ledger_entries(gateway) == []


# --- Arrival estimates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "summary", "low", "high"),
    [
        ("card", "3 business days", 3, 3),
        ("alipay", "same day", 0, 0),
        ("wechat_pay", "same day", 0, 0),
        ("bank_transfer", "1-3 business days", 1, 3),
        ("store_balance", "immediate", 0, 0),
    ],
)
def test_each_method_returns_its_arrival_estimate(
    gateway: httpx.Client, method: str, summary: str, low: int, high: int
) -> None:
    body = gateway.post("/v1/refunds", json=refund(method=method)).json()

    executed = date.fromisoformat(day_of(body["executed_at"]))
    assert body["arrival"] == {
        "summary": summary,
        "min_business_days": low,
        "max_business_days": high,
        "earliest": add_business_days(executed, low).isoformat(),
        "latest": add_business_days(executed, high).isoformat(),
    }
    assert gateway.get("/v1/refunds/RF-0001").json()["arrival"] == body["arrival"]


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2025, 1, 3), 0, date(2025, 1, 3)),  # Friday, same day
        (date(2025, 1, 3), 1, date(2025, 1, 6)),  # Friday + 1 -> Monday
        (date(2025, 1, 3), 3, date(2025, 1, 8)),  # Friday + 3 -> Wednesday
        (date(2025, 1, 4), 0, date(2025, 1, 4)),  # Saturday, same day stays Saturday
        (date(2025, 1, 4), 1, date(2025, 1, 6)),  # Saturday + 1 -> Monday
        (date(2025, 1, 8), 3, date(2025, 1, 13)),  # Wednesday + 3 -> Monday
    ],
)
def test_business_days_skip_weekends(start: date, days: int, expected: date) -> None:
    assert add_business_days(start, days) == expected
