"""How much a refund may pay: the units asked for, priced as actually paid.

Money is integer minor units throughout; fractions are rounded down (in the
payer's favour) so that an order's refunds never add up to more than was paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from services.review.refund_facts import MICROSECOND, Check, Facts, Line
from shared.money import Money

if TYPE_CHECKING:
    from services.review.policy_document import Policy


def requested_units(
    facts: Facts, policy: Policy, checks: list[Check]
) -> tuple[list[tuple[int, int]], bool]:
    """(line index, units asked) per requested line, and whether the facts suffice."""
    if not facts.lines:
        checks.append(Check("facts.complete", False, "the order's items are not known"))
        return [], False
    index: dict[str, int] = {}
    for i, line in enumerate(facts.lines):
        index.setdefault(line.sku, i)
    asked: dict[int, int] = {}
    unknown: list[str] = []
    items = facts.items or tuple((line.sku, line.quantity) for line in facts.lines)
    for sku, quantity in items:
        if sku not in index:
            unknown.append(sku)
            continue
        i = index[sku]
        asked[i] = min(asked.get(i, 0) + quantity, facts.lines[i].quantity)
    missing_period = [
        facts.lines[i].sku
        for i in asked
        if facts.lines[i].category in policy.amounts.prorata_categories
        and not _has_period(facts.lines[i])
    ]
    problems: list[str] = []
    if unknown:
        problems.append(f"not in the order: {', '.join(sorted(unknown))}")
    if missing_period:
        problems.append(f"no service period: {', '.join(missing_period)}")
    checks.append(Check("facts.complete", not problems, "; ".join(problems) or "items known"))
    return sorted(asked.items()), not problems


def _has_period(line: Line) -> bool:
    start, end = line.service_start, line.service_end
    return start is not None and end is not None and end > start


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` minor units in proportion to `weights`, exactly (largest remainder).

    Each part gets the floor of its exact share; the units left over go one each
    to the largest fractional remainders, ties to the earlier part — the same
    input always splits the same way, and the parts always add up to `total`.
    """
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    parts = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    ranked = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in ranked[: total - sum(parts)]:
        parts[i] += 1
    return parts


def refundable_amount(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> Money:
    """What the amount rules allow for the units asked, capped at what was paid."""
    currency = facts.paid.currency
    rules = policy.amounts
    if not facts.lines:
        shipping = facts.shipping_fee.amount if facts.shipping_fee and rules.exclude_shipping else 0
        allowed = max(facts.paid.amount - shipping, 0)
        checks.append(Check("amount.refundable", True, f"order total less shipping: {allowed}"))
        return Money(allowed, currency)
    gross = [line.unit_price.amount * line.quantity for line in facts.lines]
    discount = min(facts.discount.amount if facts.discount else 0, sum(gross))
    coupon_shares = allocate(discount, gross)
    shipping_shares = allocate(facts.shipping_fee.amount if facts.shipping_fee else 0, gross)
    total, details = 0, []
    for i, units in wanted:
        line = facts.lines[i]
        net = line.unit_price.amount * units
        if rules.exclude_coupons:
            net -= -(-coupon_shares[i] * units // line.quantity)  # the coupon's share, rounded up
        if not rules.exclude_shipping:
            net += shipping_shares[i] * units // line.quantity
        net = max(net, 0)
        if line.category in rules.prorata_categories and _has_period(line):
            unused, period = _unused(line, facts.requested_at)
            net = net * unused // period
            details.append(f"{line.sku}: {units} unit(s), pro-rata {unused}/{period} µs → {net}")
        else:
            details.append(f"{line.sku}: {units} unit(s) → {net}")
        total += net
    allowed = min(total, facts.paid.amount)
    excluded = [
        name
        for name, on in (("shipping", rules.exclude_shipping), ("coupons", rules.exclude_coupons))
        if on
    ]
    details.append(
        f"excluded: {', '.join(excluded) or 'nothing'}; capped at paid {facts.paid.amount}"
    )
    checks.append(Check("amount.refundable", True, "; ".join(details)))
    return Money(allowed, currency)


def _unused(line: Line, at: datetime) -> tuple[int, int]:
    """Unused and whole service period in microseconds (integers: no float ever)."""
    assert line.service_start is not None and line.service_end is not None
    period = (line.service_end - line.service_start) // MICROSECOND
    used_until = min(max(at, line.service_start), line.service_end)
    return (line.service_end - used_until) // MICROSECOND, period
