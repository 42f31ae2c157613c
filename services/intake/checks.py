"""Checks across fields of a refund request that a schema alone cannot express.

Each finding names the field by its path in the body, so that the 422 problem
document lists every bad field at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.intake.schemas import Evidence, RefundCreate

CLOCK_SKEW = timedelta(minutes=5)
NEEDS_DESCRIPTION = frozenset({"other", "special_circumstances"})


def problem(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


def request_problems(body: RefundCreate, now: datetime | None = None) -> list[dict[str, str]]:
    now = now or datetime.now(UTC)
    found = _order_problems(body, now)
    found += _item_problems(body)
    skus = {item.sku for item in body.order.items}
    found += evidence_problems(body.evidence, now, prefix="evidence", skus=skus)
    currency = body.order.paid.currency
    if body.amount is not None:
        if body.amount.currency != currency:
            found.append(
                problem("amount.currency", "currency_mismatch", f"must be the order's {currency}")
            )
        elif body.amount.amount > body.order.paid.amount:
            found.append(
                problem(
                    "amount.amount",
                    "exceeds_paid",
                    f"must not exceed the {body.order.paid.amount} paid for the order",
                )
            )
    if body.reason in NEEDS_DESCRIPTION and not body.description.strip():
        found.append(
            problem("description", "required", f"describe the {body.reason.replace('_', ' ')}")
        )
    return found


def _order_problems(body: RefundCreate, now: datetime) -> list[dict[str, str]]:
    order = body.order
    found = []
    currency = order.paid.currency
    seen: set[str] = set()
    for i, item in enumerate(order.items):
        if item.unit_price.currency != currency:
            found.append(
                problem(
                    f"order.items.{i}.unit_price.currency",
                    "currency_mismatch",
                    f"must be the order's {currency}",
                )
            )
        if item.sku in seen:
            found.append(
                problem(f"order.items.{i}.sku", "duplicate", f"{item.sku} is listed twice")
            )
        seen.add(item.sku)
    for name in ("shipping_fee", "discount"):
        fee = getattr(order, name)
        if fee is not None and fee.currency != currency:
            found.append(
                problem(f"order.{name}.currency", "currency_mismatch", f"must be {currency}")
            )
    for i, item in enumerate(order.items):
        period = item.service_period
        if period is not None and period.end <= period.start:
            found.append(
                problem(
                    f"order.items.{i}.service_period.end", "before_start", "must be after start"
                )
            )
    if order.paid_at > now + CLOCK_SKEW:
        found.append(problem("order.paid_at", "in_future", "must not be in the future"))
    if order.delivered_at is not None:
        if order.delivered_at < order.paid_at:
            found.append(
                problem("order.delivered_at", "before_payment", "must not be before paid_at")
            )
        if order.delivered_at > now + CLOCK_SKEW:
            found.append(problem("order.delivered_at", "in_future", "must not be in the future"))
    return found


def _item_problems(body: RefundCreate) -> list[dict[str, str]]:
    ordered = {item.sku: item.quantity for item in body.order.items}
    found = []
    seen: set[str] = set()
    for i, wanted in enumerate(body.items or []):
        if wanted.sku not in ordered:
            found.append(
                problem(f"items.{i}.sku", "not_in_order", f"{wanted.sku} is not in the order")
            )
        elif wanted.quantity > ordered[wanted.sku]:
            found.append(
                problem(
                    f"items.{i}.quantity",
                    "exceeds_ordered",
                    f"only {ordered[wanted.sku]} of {wanted.sku} were ordered",
                )
            )
        if wanted.sku in seen:
            found.append(problem(f"items.{i}.sku", "duplicate", f"{wanted.sku} listed twice"))
        seen.add(wanted.sku)
    return found


def evidence_problems(
    evidence: list[Evidence], now: datetime, *, prefix: str, skus: set[str] | None = None
) -> list[dict[str, str]]:
    """Evidence must not be from the future, and (given the order's SKUs) show an ordered item."""
    found = []
    for i, record in enumerate(evidence):
        if record.captured_at is not None and record.captured_at > now + CLOCK_SKEW:
            found.append(
                problem(f"{prefix}.{i}.captured_at", "in_future", "must not be in the future")
            )
        if skus is not None and record.sku is not None and record.sku not in skus:
            found.append(
                problem(f"{prefix}.{i}.sku", "not_in_order", f"{record.sku} is not in the order")
            )
    return found
