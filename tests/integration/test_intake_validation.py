"""Every validation rule of POST /v1/refunds: each bad field named, nothing stored."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.factories import refund_body
from tests.support.intake import ACME, Intake, serve_intake

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def intake(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Intake]:
    with serve_intake(request, tmp_path_factory.mktemp("intake"), "sqlite") as served:
        yield served


def setter(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return mutate


def deleter(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(body)

    return mutate


LONG_KEY = "k" * 41
CASES: dict[str, tuple[Mutation, set[tuple[str, str]]]] = {
    # the five elements
    "order missing": (deleter("order"), {("order", "missing")}),
    "customer identity missing": (
        deleter("order.customer_id"),
        {("order.customer_id", "missing")},
    ),
    "reason missing": (deleter("reason"), {("reason", "missing")}),
    "reason unknown": (setter("reason", "because"), {("reason", "literal_error")}),
    "desired outcome missing": (deleter("desired_outcome"), {("desired_outcome", "missing")}),
    "sku not in the order": (setter("items.0.sku", "NOPE"), {("items.0.sku", "not_in_order")}),
    "quantity above ordered": (
        setter("items.0.quantity", 2),
        {("items.0.quantity", "exceeds_ordered")},
    ),
    "same sku twice": (
        setter("items", [{"sku": "TSHIRT-L-WHITE", "quantity": 1}] * 2),
        {("items.1.sku", "duplicate")},
    ),
    "empty items": (setter("items", []), {("items", "too_short")}),
    # unknown fields and wrong types
    "unknown field": (setter("colour", "red"), {("colour", "extra_forbidden")}),
    "unknown nested field": (
        setter("order.items.0.colour", "red"),
        {("order.items.0.colour", "extra_forbidden")},
    ),
    "amount as a string": (setter("amount.amount", "100"), {("amount.amount", "int_type")}),
    "amount as a float": (setter("amount.amount", 1.5), {("amount.amount", "int_type")}),
    "quantity as a float": (setter("items.0.quantity", 1.5), {("items.0.quantity", "int_type")}),
    "flag as a string": (
        setter("order.items.0.custom_made", "no"),
        {("order.items.0.custom_made", "bool_type")},
    ),
    # money
    "zero amount": (setter("amount.amount", 0), {("amount.amount", "greater_than")}),
    "negative amount": (setter("amount.amount", -100), {("amount.amount", "greater_than")}),
    "nothing paid": (setter("order.paid.amount", 0), {("order.paid.amount", "greater_than")}),
    "currency not the order's": (
        setter("amount.currency", "USD"),
        {("amount.currency", "currency_mismatch")},
    ),
    "unknown currency": (
        setter("amount.currency", "XXX"),
        {("amount.currency", "unknown_currency")},
    ),
    "payment currency unknown": (
        setter("order.payment.currency", "XXX"),
        {("order.payment.currency", "unknown_currency")},
    ),
    "payment currency not a code": (
        setter("order.payment.currency", "usd"),
        {("order.payment.currency", "string_pattern_mismatch")},
    ),
    "currency not a code": (
        setter("amount.currency", "cny"),
        {("amount.currency", "string_pattern_mismatch")},
    ),
    "item price in another currency": (
        setter("order.items.0.unit_price.currency", "USD"),
        {("order.items.0.unit_price.currency", "currency_mismatch")},
    ),
    "coupon in another currency": (
        setter("order.discount", {"amount": 100, "currency": "USD"}),
        {("order.discount.currency", "currency_mismatch")},
    ),
    "service period ending before it starts": (
        setter(
            "order.items.0.service_period",
            {"start": "2026-11-01T00:00:00Z", "end": "2026-10-01T00:00:00Z"},
        ),
        {("order.items.0.service_period.end", "before_start")},
    ),
    "more than was paid": (
        setter("amount.amount", 13000),
        {("amount.amount", "exceeds_paid")},
    ),
    # times
    "time without offset": (
        setter("order.paid_at", "2026-11-01T10:00:00"),
        {("order.paid_at", "timezone_aware")},
    ),
    "delivered before paid": (
        setter("order.delivered_at", "2026-10-01T10:00:00Z"),
        {("order.delivered_at", "before_payment")},
    ),
    "paid in the future": (
        both(setter("order.paid_at", "2099-01-01T00:00:00Z"), deleter("order.delivered_at")),
        {("order.paid_at", "in_future")},
    ),
    # customer contact and locale
    "no e-mail and no phone": (
        setter("customer", {"locale": "en"}),
        {("customer", "contact_required")},
    ),
    "bad e-mail": (setter("customer.email", "not-an-address"), {("customer.email", "value_error")}),
    "bad phone": (
        setter("customer.phone", "13800000000"),
        {("customer.phone", "string_pattern_mismatch")},
    ),
    "locale missing": (deleter("customer.locale"), {("customer.locale", "missing")}),
    "locale not a language tag": (
        setter("customer.locale", "English please"),
        {("customer.locale", "string_pattern_mismatch")},
    ),
    "channel unknown": (setter("channel", "fax"), {("channel", "literal_error")}),
    # evidence
    "evidence over http": (
        setter("evidence.0.url", "http://cdn.example.com/p/1.jpg"),
        {("evidence.0.url", "string_pattern_mismatch")},
    ),
    "evidence digest not sha256": (
        setter("evidence.0.sha256", "abc"),
        {("evidence.0.sha256", "string_pattern_mismatch")},
    ),
    "evidence from the future": (
        setter("evidence.0.captured_at", "2099-01-01T00:00:00Z"),
        {("evidence.0.captured_at", "in_future")},
    ),
    "evidence of another item": (
        setter("evidence.0.sku", "NOPE"),
        {("evidence.0.sku", "not_in_order")},
    ),
    "evidence kind unknown": (
        setter("evidence.0.kind", "rumour"),
        {("evidence.0.kind", "literal_error")},
    ),
    # descriptions, oversize strings, metadata (Stripe's limits)
    "other without description": (
        both(setter("reason", "other"), setter("description", "  ")),
        {("description", "required")},
    ),
    "description too long": (
        setter("description", "x" * 2001),
        {("description", "string_too_long")},
    ),
    "order id too long": (setter("order.id", "O" * 201), {("order.id", "string_too_long")}),
    "more than 50 metadata keys": (
        setter("metadata", {f"k{i}": "v" for i in range(51)}),
        {("metadata", "too_long")},
    ),
    "metadata key over 40": (
        setter("metadata", {LONG_KEY: "v"}),
        {(f"metadata.{LONG_KEY}.[key]", "string_too_long")},
    ),
    "metadata value over 500": (
        setter("metadata", {"k": "v" * 501}),
        {("metadata.k", "string_too_long")},
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_rule_names_the_bad_field_and_stores_nothing(intake: Intake, case: str) -> None:
    mutate, expected = CASES[case]
    body = copy.deepcopy(refund_body(12900))
    mutate(body)
    before = intake.stored()
    response = intake.client.post(
        "/v1/refunds", json=body, headers=ACME | {"Idempotency-Key": f"k-{case}"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation") and problem["status"] == 422
    assert {(e["field"], e["code"]) for e in problem["errors"]} == expected
    assert all(e["message"] for e in problem["errors"])
    assert intake.stored() == before
    # Nothing was remembered under the key either: a valid body with it is created now.
    created = intake.client.post(
        "/v1/refunds", json=refund_body(12900), headers=ACME | {"Idempotency-Key": f"k-{case}"}
    )
    assert created.status_code == 201


def test_several_bad_fields_are_all_named(intake: Intake) -> None:
    body = refund_body(12900)
    body["amount"] = {"amount": -1, "currency": "CNY"}
    body["reason"] = "because"
    body["channel"] = "fax"
    body["unknown"] = True
    response = intake.client.post("/v1/refunds", json=body, headers=ACME)
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"amount.amount", "reason", "channel", "unknown"}


def test_unparseable_json_is_400(intake: Intake) -> None:
    before = intake.stored()
    response = intake.client.post(
        "/v1/refunds", content=b'{"order": ', headers=ACME | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("malformed-json")
    assert intake.stored() == before


def test_oversize_body_is_413(intake: Intake) -> None:
    before = intake.stored()
    body = refund_body(12900)
    body["description"] = "x" * 300_000  # over the 256 KiB limit: refused before parsing
    response = intake.client.post("/v1/refunds", json=body, headers=ACME)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert intake.stored() == before


def test_lifecycle_bodies_are_validated_too(intake: Intake) -> None:
    refund = intake.create(refund_body(12900))
    evidence = intake.client.post(
        f"/v1/refunds/{refund['id']}/evidence",
        json={"evidence": [{"kind": "photo", "url": "ftp://x"}], "note": 5},
        headers=ACME,
    )
    assert evidence.status_code == 422
    fields = {(e["field"], e["code"]) for e in evidence.json()["errors"]}
    assert fields == {("evidence.0.url", "string_pattern_mismatch"), ("note", "string_type")}
    appeal = intake.client.post(
        f"/v1/refunds/{refund['id']}/appeal", json={"statement": "   "}, headers=ACME
    )
    assert [(e["field"], e["code"]) for e in appeal.json()["errors"]] == [
        ("statement", "string_too_short")
    ]
    withdraw = intake.client.post(
        f"/v1/refunds/{refund['id']}/withdraw", json={"why": "x"}, headers=ACME
    )
    assert [e["field"] for e in withdraw.json()["errors"]] == ["why"]
