"""Intake's HTTP API on both stores, for the test_intake_api_*.py integration tests: the
`intake` fixture (served over SQLite and over PostgreSQL) and the refund bodies of a
two-item order with shipping, asked for in part.

A test module imports the fixture by name: `from tests.support.intake_api import intake_fixture`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.factories import refund_body
from tests.support.intake import Intake, serve_intake


@pytest.fixture(name="intake", params=["sqlite", "postgres"])
def intake_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, request.param) as served:
        yield served


def two_item_order() -> dict[str, Any]:
    body = refund_body(12900)
    order = body["order"]
    order["paid"] = {"amount": 16900, "currency": "CNY"}
    order["items"] = [
        {
            **order["items"][0],
            "sku": "A",
            "quantity": 2,
            "unit_price": {"amount": 5000, "currency": "CNY"},
        },
        {
            **order["items"][0],
            "sku": "B",
            "quantity": 1,
            "unit_price": {"amount": 5900, "currency": "CNY"},
        },
    ]
    order["shipping_fee"] = {"amount": 1000, "currency": "CNY"}
    return order


def partial(
    order: dict[str, Any], amount: int | None, items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body = refund_body(12900)
    body["order"] = copy.deepcopy(order)
    body["items"] = items
    body["amount"] = {"amount": amount, "currency": "CNY"} if amount else None
    body["evidence"] = []
    for field in ("items", "amount"):
        if body[field] is None:
            del body[field]
    return body
