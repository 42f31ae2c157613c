"""Integration tests of the sandbox gateway's ledger across restarts (replays, a
processing refund completing, a first-schema ledger migrated) and of its daily settlement
reports, honest and with injected discrepancies."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.gateway import LEDGER_FILE
from services.payout.providers.gateway import SETTLEMENT_COLUMNS
from tests.support.sandbox_gateway import (
    Receiver,
    control,
    day_of,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    ledger_entries,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    refund,
    running_gateway,
    settlement,
    status_of,
)

# --- Durability ------------------------------------------------------------------------


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as client:
        original = client.post("/v1/refunds", json=refund()).json()

    with running_gateway(tmp_path) as client:
        assert client.get("/ledger").json()["count"] == 1
        replay = client.post("/v1/refunds", json=refund())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == original


def test_processing_refund_completes_after_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    with running_gateway(tmp_path) as client:
        control(client, async_mode=True, completion_delay_ms=500)
        accepted = client.post("/v1/refunds", json=refund(notify_url=receiver.url)).json()
        assert accepted["status"] == "processing"
    assert receiver.calls() == []

    with running_gateway(tmp_path) as client:
        [call] = receiver.wait_for(1)
        assert call.json()["data"]["status"] == "success"
        assert call.json()["data"]["provider_reference"] == accepted["provider_reference"]
        assert status_of(client, "RF-0001") == "success"
        assert len(ledger_entries(client)) == 1


def test_a_ledger_of_the_first_schema_is_migrated(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / LEDGER_FILE) as conn:
        conn.execute(
            "CREATE TABLE refunds (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " merchant_refund_no TEXT NOT NULL UNIQUE, provider_reference TEXT NOT NULL UNIQUE,"
            " amount INTEGER NOT NULL, currency TEXT NOT NULL, method TEXT NOT NULL,"
            " payment_reference TEXT NOT NULL, executed_at TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO refunds (merchant_refund_no, provider_reference, amount, currency,"
            " method, payment_reference, executed_at) VALUES"
            " ('RF-0001', 'gw_old', 1250, 'CNY', 'wechat_pay', 'pay_42',"
            " '2025-01-03T10:00:00.000000Z')"
        )
    conn.close()

    with running_gateway(tmp_path) as client:
        assert ledger_entries(client) == [
            {
                "merchant_refund_no": "RF-0001",
                "provider_reference": "gw_old",
                "amount": 1250,
                "currency": "CNY",
                "method": "wechat_pay",
                "payment_reference": "pay_42",
                "executed_at": "2025-01-03T10:00:00.000000Z",
            }
        ]
        replay = client.post("/v1/refunds", json=refund())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["status"] == "success"
        assert replay.json()["completed_at"] == "2025-01-03T10:00:00.000000Z"
        assert [row["merchant_refund_no"] for row in settlement(client, "2025-01-03")] == [
            "RF-0001"
        ]
        assert client.post("/v1/refunds", json=refund("RF-0002")).status_code == 200
        assert len(ledger_entries(client)) == 2


# --- Settlement reports ----------------------------------------------------------------


def _settle_a_day(gateway: httpx.Client) -> tuple[str, dict[str, dict[str, Any]]]:
    """Two successes, one closed and one still processing; the day and the refunds."""
    made = {
        "RF-A": gateway.post("/v1/refunds", json=refund("RF-A", amount=100)).json(),
        "RF-B": gateway.post("/v1/refunds", json=refund("RF-B", method="card")).json(),
    }
    control(gateway, close_next=1)
    made["RF-C"] = gateway.post("/v1/refunds", json=refund("RF-C", amount=300)).json()
    control(gateway, async_mode=True, completion_delay_ms=600_000)
    assert gateway.post("/v1/refunds", json=refund("RF-D")).json()["status"] == "processing"
    control(gateway, async_mode=False)
    return day_of(made["RF-A"]["completed_at"]), made


def _line(refund_view: dict[str, Any]) -> dict[str, str]:
    return {column: str(refund_view[column]) for column in SETTLEMENT_COLUMNS}


def test_settlement_lists_the_refunds_completed_that_day(gateway: httpx.Client) -> None:
    day, made = _settle_a_day(gateway)

    lines = settlement(gateway, day)

    expected = [_line(view) for view in made.values() if day_of(view["completed_at"]) == day]
    assert lines == expected
    assert "RF-D" not in {line["merchant_refund_no"] for line in lines}  # still processing
    assert {line["status"] for line in lines} <= {"success", "closed"}
    assert settlement(gateway, "2001-01-01") == []
    response = gateway.get(f"/settlements/{day}.csv")
    assert response.text.splitlines()[0] == ",".join(SETTLEMENT_COLUMNS)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="settlement-{day}.csv"'
    )


@pytest.mark.parametrize("bad_day", ["2025-13-01", "20250101", "yesterday"])
def test_settlement_day_must_be_a_date(gateway: httpx.Client, bad_day: str) -> None:
    response = gateway.get(f"/settlements/{bad_day}.csv")

    assert response.status_code == 400
    assert response.json() == {"error": "settlement day must be a date: YYYY-MM-DD"}


def test_settlement_discrepancies_can_be_injected(gateway: httpx.Client) -> None:
    day, made = _settle_a_day(gateway)
    honest = settlement(gateway, day)
    ledger_before = ledger_entries(gateway)

    control(
        gateway,
        settlement_extra_lines=1,
        settlement_amount_overrides={"RF-A": 101},
        settlement_status_overrides={"RF-B": "closed"},
        settlement_omit=["RF-C"],
    )
    doctored = settlement(gateway, day)

    by_number = {line["merchant_refund_no"]: line for line in doctored}
    assert "RF-C" not in by_number
    assert by_number["RF-A"] == {**_line(made["RF-A"]), "amount": "101"}
    assert by_number["RF-B"] == {**_line(made["RF-B"]), "status": "closed"}
    [extra] = [line for number, line in by_number.items() if not number.startswith("RF-")]
    assert extra["merchant_refund_no"] == f"UNKNOWN-{day}-1"
    assert extra["provider_reference"].startswith("gw_")
    assert extra["provider_reference"] not in {view["provider_reference"] for view in made.values()}
    assert extra["completed_at"].startswith(day)
    assert settlement(gateway, day) == doctored  # stable across downloads
    [unknown] = settlement(gateway, "2001-01-01")  # an extra line even on an empty day
    assert unknown["merchant_refund_no"] == "UNKNOWN-2001-01-01-1"
    assert unknown["completed_at"] == "2001-01-01T23:59:59.000000Z"
    assert ledger_entries(gateway) == ledger_before  # only the report lies
    control(gateway, reset=True)
    assert settlement(gateway, day) == honest
