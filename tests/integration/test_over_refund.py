"""No over-refund under concurrency: partial refunds of one order raced through two replicas
of intake on one PostgreSQL store."""

from __future__ import annotations

import asyncio
import copy
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import IntegrityError

from services.intake.application import IntakeApplication
from services.intake.bootstrap import build
from services.intake.orders import Order
from services.intake.settings import IntakeSettings
from shared.store import store_env
from tests.support.factories import refund_body
from tests.support.intake import ACME, ACME_KEY

PAID = 10_000


def settings(postgres_url: str, schema: str, tmp_path: Path) -> IntakeSettings:
    return IntakeSettings(
        env="test",
        data_dir=tmp_path,
        database_url=postgres_url,
        database_schema=schema,
        relay_enabled=False,
        consumer_enabled=False,
        api_keys=f"acme:{ACME_KEY}",
    )


def partial_refund(order: dict[str, Any], amount: int) -> dict[str, Any]:
    body = refund_body(PAID)
    body["order"] = copy.deepcopy(order)
    body["amount"] = {"amount": amount, "currency": "CNY"}
    body["desired_outcome"] = "partial_refund"
    del body["items"]  # by amount only: several partial refunds of the same item
    return body


def count_write_conflicts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each save that lost a race (the optimistic-concurrency retries)."""
    conflicts: list[int] = []
    save = IntakeApplication.save

    def counting(self: IntakeApplication, *objs: Any, **kwargs: Any) -> Any:
        try:
            return save(self, *objs, **kwargs)
        except IntegrityError:
            conflicts.append(1)
            raise

    monkeypatch.setattr(IntakeApplication, "save", counting)
    return conflicts


@pytest.mark.slow
async def test_twenty_concurrent_partial_refunds_never_exceed_what_was_paid(
    postgres_url: str, schema_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflicts = count_write_conflicts(monkeypatch)
    config = settings(postgres_url, f"{schema_prefix}_intake", tmp_path)
    replicas = [build(config), build(config)]
    order = refund_body(PAID)["order"]
    rng = random.Random(7)
    amounts = [rng.randrange(500, 2600) for _ in range(20)]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=replica.http), base_url="http://intake", timeout=60
        )
        for replica in replicas
    ]
    try:
        answers = await asyncio.gather(
            *(
                clients[i % 2].post(
                    "/v1/refunds",
                    json=partial_refund(order, amount),
                    headers=ACME | {"Idempotency-Key": f"race-{i}"},
                )
                for i, amount in enumerate(amounts)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
        for replica in replicas:
            replica.close()

    assert conflicts, "the requests never raced: the test proves nothing"
    accepted = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert {a.status_code for a in refused} <= {422}, [a.text for a in refused]
    granted = sum(a.json()["amount"]["amount"] for a in accepted)
    assert granted <= PAID
    assert accepted and refused  # the amounts add up to about twice what was paid

    # Every refusal is a clear problem, and was right: its amount did not fit what was left.
    left = PAID - granted
    for answer, amount in zip(answers, amounts, strict=True):
        if answer.status_code == 201:
            continue
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        [error] = problem["errors"]
        assert (error["field"], error["code"]) == ("amount.amount", "exceeds_refundable")
        assert amount > left

    # The order aggregate agrees: one reservation per accepted refund, nothing more.
    reader = IntakeApplication(env=store_env(config, "intake"))
    try:
        stored: Order = reader.repository.get(Order.create_id("acme", order["id"]))
        reserved = {rid: r["amount"] for rid, r in stored.reservations.items()}
        assert sorted(reserved.values()) == sorted(a.json()["amount"]["amount"] for a in accepted)
        assert stored.refundable().amount == left
    finally:
        reader.close()
