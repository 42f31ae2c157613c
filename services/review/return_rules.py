"""Whether an approved refund needs the goods back, where to and by when, and what an
inspection deducts: pure functions of recorded facts and the policy's `returns:` section.

Like `assessment.assess`, no clock and no I/O: a decision can be re-computed from its facts
and policy version and come out the same, and it always cites the rule that decided.

Deadlines count calendar days by default, like refund windows: from the day after the
moment, in the policy's time zone, ending at local midnight. A policy may say
`deadlines.business_days: true`; then they count business days of its working calendar
from the moment itself, like the review SLAs (`WorkingCalendar.add_business_days`).

Money is integer minor units. A deduction is rounded down to the minor unit, in the
customer's favour, and never exceeds the price of the item it is taken from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from services.review.assessment import explain
from services.review.grading import policy_money
from services.review.refund_facts import Line
from services.review.vocabulary import (
    ANY,
    HEAVY_DAMAGE,
    NO_DEDUCTION_RULE,
    NO_RETURN_SECTION,
    WRONG_ITEM,
    InspectionCondition,
)
from shared.money import Money

if TYPE_CHECKING:
    from services.review.policy_document import Policy
    from services.review.policy_returns import (
        AmountRule,
        ReturnAddress,
        ReturnDeadlines,
        ReturnRule,
        Returns,
    )

BASIS_POINTS = 10_000
DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class ReturnItem(Line):
    """A line of the order approved for refund: `quantity` of it, for which the refund pays
    `price` (the value a rule's `value_below` and a deduction's percentage look at)."""

    price: Money


@dataclass(frozen=True)
class ReturnFacts:
    """What the return decision looks at, as recorded when the refund was approved."""

    reason: str
    desired_outcome: str
    items: tuple[ReturnItem, ...]
    approved_at: datetime
    merchant_id: str | None = None
    warehouse_id: str | None = None

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("a return decision needs the items approved")
        if self.approved_at.utcoffset() is None:
            raise ValueError("approved_at must be timezone-aware")
        if any(item.quantity < 1 or item.price.amount < 0 for item in self.items):
            raise ValueError("quantities must be positive and prices not negative")


@dataclass(frozen=True)
class Deadline:
    """When something is due, and when to remind whoever must do it (UTC)."""

    due: datetime
    remind_at: datetime


@dataclass(frozen=True)
class ItemReturn:
    """One item's answer: must it come back, and by which rule."""

    sku: str
    category: str
    quantity: int
    return_required: bool
    rule: str


@dataclass(frozen=True)
class ReturnDecision:
    """Return and refund, or refund only, with everything to tell the customer.

    The refund needs a return when any item does; `rule` is then the rule of the
    first item that must come back, else the rule of the first item. `address` and
    `ship_by` are set only when goods must come back.
    """

    return_required: bool
    rule: str
    items: tuple[ItemReturn, ...]
    parameters: dict[str, str]
    explanation: dict[str, str]
    address: ReturnAddress | None
    ship_by: Deadline | None
    policy_version: str

    @property
    def items_to_return(self) -> tuple[ItemReturn, ...]:
        return tuple(item for item in self.items if item.return_required)


def return_decision(facts: ReturnFacts, policy: Policy) -> ReturnDecision:
    """Decide whether the goods of an approved refund must come back first."""
    returns = policy.returns
    if returns is None:  # a policy from before returns existed: refund only, as always
        items = tuple(_item(item, False, NO_RETURN_SECTION) for item in facts.items)
        return ReturnDecision(False, NO_RETURN_SECTION, items, {}, {}, None, None, policy.version)
    matched = [(item, _rule_for(returns, facts, item)) for item in facts.items]
    decided = [
        _item(item, rule.return_required, rule.id) if rule else _default(returns, item)
        for item, rule in matched
    ]
    required = any(item.return_required for item in decided)
    first = next((i for i, item in enumerate(decided) if item.return_required), 0)
    deciding_item, deciding_rule = matched[first]
    ship_by = return_deadline("ship", facts.approved_at, policy) if required else None
    parameters = {
        "category": deciding_item.category,
        "reason": facts.reason,
        "value": deciding_item.price.format(),
        "threshold": _threshold(deciding_rule, deciding_item.price.currency),
        "ship_by": _local(policy, ship_by.due) if ship_by else "",
        "ship_by_days": str(returns.deadlines.ship_by_days),
        "receipt_by_days": str(returns.deadlines.receipt_by_days),
    }
    rule = decided[first].rule
    return ReturnDecision(
        return_required=required,
        rule=rule,
        items=tuple(decided),
        parameters=parameters,
        explanation=explain(policy, rule, parameters),
        address=returns.addresses.for_return(facts.merchant_id, facts.warehouse_id)
        if required
        else None,
        ship_by=ship_by,
        policy_version=policy.version,
    )


def _item(item: ReturnItem, required: bool, rule: str) -> ItemReturn:
    return ItemReturn(item.sku, item.category, item.quantity, required, rule)


def _default(returns: Returns, item: ReturnItem) -> ItemReturn:
    return _item(item, returns.default.return_required, returns.default.id)


def _rule_for(returns: Returns, facts: ReturnFacts, item: ReturnItem) -> ReturnRule | None:
    """The first rule matching the item's category, the reason, the outcome and its value."""
    for rule in returns.rules:
        if not (
            _covers(rule.categories, item.category)
            and _covers(rule.reasons, facts.reason)
            and _covers(rule.outcomes, facts.desired_outcome)
        ):
            continue
        if rule.value_below is not None and not item.price < policy_money(
            rule.value_below, item.price.currency
        ):
            continue
        return rule
    return None


def _covers(values: tuple[str, ...], value: str) -> bool:
    return ANY in values or value in values


def _threshold(rule: ReturnRule | None, currency: str) -> str:
    if rule is None or rule.value_below is None:
        return ""
    return policy_money(rule.value_below, currency).format()


# --- deadlines -----------------------------------------------------------------------------


def return_deadline(
    kind: Literal["ship", "receipt"], start: datetime, policy: Policy
) -> Deadline | None:
    """By when the customer must ship the goods back after approval (`ship`), or the
    warehouse record their receipt after the carrier delivered them (`receipt`), and when
    to remind them. None: the policy has no returns."""
    if policy.returns is None:
        return None
    deadlines = policy.returns.deadlines
    days, before = (
        (deadlines.ship_by_days, deadlines.ship_reminder_days_before)
        if kind == "ship"
        else (deadlines.receipt_by_days, deadlines.receipt_reminder_days_before)
    )
    return _deadline(policy, deadlines, start, days, before)


def _deadline(
    policy: Policy, deadlines: ReturnDeadlines, start: datetime, days: int, before: int
) -> Deadline:
    if start.utcoffset() is None:
        raise ValueError(f"{start} must be timezone-aware")
    if deadlines.business_days:
        calendar = policy.working_calendar()
        due = calendar.add_business_days(start, days)
        return Deadline(due, calendar.add_business_days(start, days - before))
    zone = ZoneInfo(policy.calendar.timezone)
    first_day_after = start.astimezone(zone).date() + DAY
    due = datetime.combine(first_day_after + days * DAY, time(), tzinfo=zone)
    remind = datetime.combine(first_day_after + (days - before) * DAY, time(), tzinfo=zone)
    return Deadline(_utc(due), _utc(remind))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo("UTC"))


def _local(policy: Policy, moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(policy.calendar.timezone)).strftime("%Y-%m-%d %H:%M")


# --- inspection ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InspectedItem(ReturnItem):
    """An item as the warehouse found it; `heavy_damage` is the inspector's mark."""

    condition: InspectionCondition
    heavy_damage: bool = False


@dataclass(frozen=True)
class Deduction:
    """What the inspection of one item means for its refund.

    `pay`: `price - amount` is paid, `amount` deducted by `rule` (None: nothing
    deducted, no rule applied). `reviewer`: a person decides, `rule` says why.
    """

    outcome: Literal["pay", "reviewer"]
    price: Money
    amount: Money
    rule: str | None
    parameters: dict[str, str]
    explanation: dict[str, str]

    @property
    def pays(self) -> Money | None:
        """What the item's refund pays after the deduction; None while a person decides."""
        return None if self.outcome == "reviewer" else self.price - self.amount


def deduction(item: InspectedItem, reason: str, policy: Policy) -> Deduction:
    """The deduction an inspection outcome allows, or a reviewer when it contradicts the claim.

    as_expected: the first restocking fee matching the item's category and the
    request's reason, if any. damaged_by_customer: the damage rule, unless the
    inspector marked heavy damage. missing_parts: the missing-parts rule. wrong_item:
    always a reviewer. A damaged or incomplete item without a rule goes to a reviewer.
    """
    if item.quantity < 1 or item.price.amount < 0:
        raise ValueError("quantity must be positive and price not negative")
    returns = policy.returns
    rules = returns.deductions if returns is not None else None
    if item.condition == "wrong_item":
        return _to_reviewer(policy, item, WRONG_ITEM)
    if item.condition == "damaged_by_customer" and item.heavy_damage:
        return _to_reviewer(policy, item, HEAVY_DAMAGE)
    zero = Money(0, item.price.currency)
    if item.condition == "as_expected":
        fees = rules.restocking if rules is not None else ()
        fee = next(
            (
                f
                for f in fees
                if _covers(f.categories, item.category) and _covers(f.reasons, reason)
            ),
            None,
        )
        if fee is None:
            return _decided(policy, item, "pay", zero, None)
        return _decided(policy, item, "pay", deducted(fee, item), fee.id)
    rule = (
        None
        if rules is None
        else rules.damaged_by_customer
        if item.condition == "damaged_by_customer"
        else rules.missing_parts
    )
    if rule is None:
        return _to_reviewer(policy, item, NO_DEDUCTION_RULE)
    return _decided(policy, item, "pay", deducted(rule, item), rule.id)


def deducted(rule: AmountRule, item: InspectedItem) -> Money:
    """`basis_points` of the price, rounded down, plus `fixed` per unit; at most `cap` per
    unit, and never more than the price."""
    currency = item.price.currency
    amount = item.price.amount * rule.basis_points // BASIS_POINTS
    if rule.fixed is not None:
        amount += policy_money(rule.fixed, currency).amount * item.quantity
    if rule.cap is not None:
        amount = min(amount, policy_money(rule.cap, currency).amount * item.quantity)
    return Money(min(amount, item.price.amount), currency)


def _to_reviewer(policy: Policy, item: InspectedItem, rule: str) -> Deduction:
    return _decided(policy, item, "reviewer", Money(0, item.price.currency), rule)


def _decided(
    policy: Policy,
    item: InspectedItem,
    outcome: Literal["pay", "reviewer"],
    amount: Money,
    rule: str | None,
) -> Deduction:
    parameters = {
        "sku": item.sku,
        "category": item.category,
        "price": item.price.format(),
        "deduction": amount.format(),
        "condition": item.condition,
    }
    explanation = explain(policy, rule, parameters) if rule is not None else {}
    return Deduction(outcome, item.price, amount, rule, parameters, explanation)
