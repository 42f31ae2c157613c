"""Which refunds need the goods back first (退货退款 vs 仅退款), where they go, by when, and what
an inspection may deduct: the `returns:` section of the refund policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from services.review.policy_values import AmountByCurrency, ReasonOrAny, Strict, non_empty
from services.review.vocabulary import ANY, INSPECTION_RULE_IDS, NO_RETURN_SECTION
from shared.contracts import DesiredOutcome

BASIS_POINTS = 10_000  # 100 %
OUTCOMES: tuple[str, ...] = get_args(DesiredOutcome)


def _outcome_or_any(value: str) -> str:
    if value != ANY and value not in OUTCOMES:
        known = ", ".join(OUTCOMES)
        raise ValueError(f"unknown desired outcome {value!r}; use '*' or one of {known}")
    return value


OutcomeOrAny = Annotated[str, AfterValidator(_outcome_or_any)]


def _alone(rule_id: str, **lists: tuple[str, ...]) -> None:
    for name, values in lists.items():
        if ANY in values and len(values) > 1:
            raise ValueError(f"{rule_id}.{name}: '*' must stand alone")


class ReturnRule(Strict):
    """Whether goods must come back, for some categories, reasons and desired outcomes.

    Rules are tried in document order per item; the first matching one decides.
    `value_below` narrows a rule to items worth less than an amount (the price of
    the quantity asked for, compared exactly in minor units): cheap damaged goods
    are not worth the postage back.
    """

    id: str = Field(pattern=r"^return\.[a-z0-9_]+$", description="rule id, e.g. return.no_reason")
    categories: tuple[str, ...] = Field(
        default=(ANY,), min_length=1, description="product categories it covers, or ['*']"
    )
    reasons: Annotated[tuple[ReasonOrAny, ...], AfterValidator(non_empty)] = Field(
        default=(ANY,), description="reason codes it covers, or ['*']"
    )
    outcomes: Annotated[tuple[OutcomeOrAny, ...], AfterValidator(non_empty)] = Field(
        default=(ANY,), description="desired outcomes it covers, or ['*']"
    )
    value_below: AmountByCurrency | None = Field(
        default=None,
        description="only items worth less than this (major units per currency; `default` "
        "for any other currency)",
    )
    return_required: bool = Field(description="true: return and refund; false: refund only")

    @model_validator(mode="after")
    def _star_alone(self) -> ReturnRule:
        _alone(self.id, categories=self.categories, reasons=self.reasons, outcomes=self.outcomes)
        return self


class DefaultReturnRule(Strict):
    """What an item no rule matches gets."""

    id: str = Field(default="return.default", pattern=r"^return\.[a-z0-9_]+$")
    return_required: bool


class ReturnAddress(Strict):
    """Where the goods go: a merchant's or warehouse's address, not a customer's (not sealed)."""

    name: str = Field(min_length=1, max_length=100, description="recipient, e.g. 退货仓 收货组")
    phone: str = Field(pattern=r"^\+?[0-9][0-9 \-]{4,19}$", description="recipient's phone")
    lines: tuple[str, ...] = Field(min_length=1, max_length=4, description="address lines")
    postcode: str = Field(pattern=r"^[A-Za-z0-9 \-]{3,10}$")

    @model_validator(mode="after")
    def _lines_not_blank(self) -> ReturnAddress:
        if any(not line.strip() for line in self.lines):
            raise ValueError("lines: an address line is blank")
        return self


class ReturnAddresses(Strict):
    """A warehouse's address first, else the merchant's, else `default`."""

    default: ReturnAddress
    merchants: dict[str, ReturnAddress] = Field(default_factory=dict, description="by merchant id")
    warehouses: dict[str, ReturnAddress] = Field(
        default_factory=dict, description="by warehouse id"
    )

    def for_return(self, merchant_id: str | None, warehouse_id: str | None) -> ReturnAddress:
        if warehouse_id is not None and warehouse_id in self.warehouses:
            return self.warehouses[warehouse_id]
        if merchant_id is not None and merchant_id in self.merchants:
            return self.merchants[merchant_id]
        return self.default


class ReturnDeadlines(Strict):
    """How long the customer has to ship and the warehouse to record the receipt.

    Calendar days (the default) count like refund windows: from the day after the
    moment, in the policy's time zone, to local midnight. Business days count in the
    policy's working calendar from the moment itself (as the review SLAs do).
    """

    ship_by_days: int = Field(gt=0, description="after approval, for the customer to ship")
    receipt_by_days: int = Field(
        gt=0, description="after carrier delivery, for the warehouse to record the receipt"
    )
    ship_reminder_days_before: int = Field(ge=0, description="remind the customer this early")
    receipt_reminder_days_before: int = Field(ge=0, description="remind the warehouse this early")
    business_days: bool = Field(
        default=False, description="count business days of `calendar` instead of calendar days"
    )

    @model_validator(mode="after")
    def _reminders_inside(self) -> ReturnDeadlines:
        if self.ship_reminder_days_before >= self.ship_by_days:
            raise ValueError("ship_reminder_days_before must be less than ship_by_days")
        if self.receipt_reminder_days_before >= self.receipt_by_days:
            raise ValueError("receipt_reminder_days_before must be less than receipt_by_days")
        return self


class AmountRule(Strict):
    """A deduction: `basis_points` of the item's price plus `fixed`, at most `cap`.

    Never more than the item's price. Fractions of a minor unit are rounded down,
    in the customer's favour.
    """

    basis_points: int = Field(default=0, ge=0, le=BASIS_POINTS, description="1% = 100")
    fixed: AmountByCurrency | None = Field(default=None, description="a fixed amount on top")
    cap: AmountByCurrency | None = Field(default=None, description="the most ever deducted")

    @model_validator(mode="after")
    def _deducts_something(self) -> AmountRule:
        fixed = self.fixed.decimals().values() if self.fixed is not None else ()
        if self.basis_points == 0 and not any(amount > Decimal(0) for amount in fixed):
            raise ValueError("give basis_points or a fixed amount greater than zero")
        return self


class RestockingFee(AmountRule):
    """A restocking fee for goods received as expected, for some categories and reasons."""

    id: str = Field(pattern=r"^deduction\.[a-z0-9_]+$", description="e.g. deduction.restocking")
    categories: tuple[str, ...] = Field(min_length=1, description="categories it applies to")
    reasons: Annotated[tuple[ReasonOrAny, ...], AfterValidator(non_empty)] = Field(
        default=(ANY,), description="reasons it applies to, e.g. [changed_mind]"
    )

    @model_validator(mode="after")
    def _star_alone(self) -> RestockingFee:
        _alone(self.id, categories=self.categories, reasons=self.reasons)
        return self


class DamageDeduction(AmountRule):
    """Damage by the customer; heavy damage (as the inspector marks it) goes to a reviewer."""

    id: str = Field(default="deduction.damaged_by_customer", pattern=r"^deduction\.[a-z0-9_]+$")


class MissingPartsDeduction(AmountRule):
    """Parts or accessories missing from the goods received."""

    id: str = Field(default="deduction.missing_parts", pattern=r"^deduction\.[a-z0-9_]+$")


class Deductions(Strict):
    """What an inspection may take off an item's refund, each a rule cited by the decision."""

    restocking: tuple[RestockingFee, ...] = Field(
        default=(), description="first match by category and reason; none: no fee"
    )
    damaged_by_customer: DamageDeduction | None = Field(
        default=None, description="none: every damaged return goes to a reviewer"
    )
    missing_parts: MissingPartsDeduction | None = Field(
        default=None, description="none: every incomplete return goes to a reviewer"
    )

    def rule_ids(self) -> list[str]:
        ids = [fee.id for fee in self.restocking]
        ids += [rule.id for rule in (self.damaged_by_customer, self.missing_parts) if rule]
        return ids


class Returns(Strict):
    """The return policy: rules, a default, addresses, deadlines and deductions."""

    rules: tuple[ReturnRule, ...] = Field(description="tried in order; the first match decides")
    default: DefaultReturnRule = Field(description="for an item no rule matches")
    addresses: ReturnAddresses
    deadlines: ReturnDeadlines
    deductions: Deductions = Deductions()

    @model_validator(mode="after")
    def _unique_ids(self) -> Returns:
        ids = [rule.id for rule in self.rules] + [self.default.id] + self.deductions.rule_ids()
        ids += sorted(INSPECTION_RULE_IDS | {NO_RETURN_SECTION})
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique (and not a fixed one): {duplicates}")
        return self

    def categories_named(self) -> list[tuple[str, tuple[str, ...]]]:
        """(where, categories) of every rule, to check them against the policy's categories."""
        named = [(f"rules.{i}.categories ({r.id})", r.categories) for i, r in enumerate(self.rules)]
        named += [
            (f"deductions.restocking.{i}.categories ({fee.id})", fee.categories)
            for i, fee in enumerate(self.deductions.restocking)
        ]
        return named

    def cited_rules(self) -> dict[str, Literal["return", "deduction", "inspection"]]:
        """Every rule id a return decision or a deduction may cite, by kind."""
        cited: dict[str, Literal["return", "deduction", "inspection"]] = {}
        cited |= dict.fromkeys([rule.id for rule in self.rules] + [self.default.id], "return")
        cited |= dict.fromkeys(self.deductions.rule_ids(), "deduction")
        cited |= dict.fromkeys(INSPECTION_RULE_IDS, "inspection")
        return cited
