"""Request bodies and small waiting helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.money import Money


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def order(
    amount: int = 12900,
    currency: str = "CNY",
    method: str = "alipay",
    *,
    delivered_days_ago: float = 2,
    customer_id: str = "C-42",
) -> dict[str, Any]:
    """An order paid a few days ago and delivered `delivered_days_ago` (inside every window)."""
    return {
        "id": f"ORD-{uuid.uuid4().hex[:8]}",
        "customer_id": customer_id,
        "paid": {"amount": amount, "currency": currency},
        "paid_at": _ago(delivered_days_ago + 2),
        "delivered_at": _ago(delivered_days_ago),
        "payment": {"method": method, "reference": "2026110122001"},
        "items": [
            {
                "sku": "TSHIRT-L-WHITE",
                "name": "T-shirt, L, white",
                "category": "apparel",
                "quantity": 1,
                "unit_price": {"amount": amount, "currency": currency},
                "custom_made": False,
            }
        ],
    }


def refund_body(amount: int = 12900, currency: str = "CNY", **overrides: Any) -> dict[str, Any]:
    """A POST /v1/refunds body as in ARCHITECTURE §6."""
    body: dict[str, Any] = {
        "order": order(amount, currency),
        "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1}],
        "amount": {"amount": amount, "currency": currency},
        "reason": "damaged",
        "desired_outcome": "full_refund",
        "description": "Stain on the front, visible in the photo",
        "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}],
        "customer": {"email": "li.wei@example.com", "phone": "+8613800000000", "locale": "zh-CN"},
        "channel": "app",
        "metadata": {"ticket": "T-77"},
    }
    body.update(overrides)
    return body


def intake_command(amount: int = 12900, currency: str = "CNY") -> dict[str, Any]:
    """The draft intake's API hands to `IntakeApplication.request_refund` (a new order each).

    Each from a new customer, so that review's risk score sees no refund history.
    """
    body = refund_body(amount, currency)
    body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    return {
        "order": body["order"],
        "amount": Money(amount, currency),
        "items": body["items"],
        "reason": body["reason"],
        "desired_outcome": body["desired_outcome"],
        "description": body["description"],
        "evidence": body["evidence"],
        "customer": body["customer"],
        "channel": body["channel"],
        "metadata": body["metadata"],
    }


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
