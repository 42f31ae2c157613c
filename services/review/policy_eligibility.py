"""Which refunds the policy allows, how much they pay, and which need no person: refund
windows, non-refundable classes of items, amount rules and automatic approval."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from services.review.policy_values import (
    ANY,
    AmountByCurrency,
    ReasonOrAny,
    Strict,
    non_empty,
)
from shared.contracts import DesiredOutcome, Reason


class WindowRule(Strict):
    """How long after delivery (or payment) a request may come, for some categories and reasons.

    Windows are tried in document order and the first one matching the item's
    category and the request's reason applies. `days` count calendar days in the
    policy's time zone from the day after the anchor and end at local midnight
    (the PRC "7 days from the day after receipt"); `hours` count exactly. Before
    the anchor has happened (not yet delivered) a window has not started.
    """

    id: str = Field(
        pattern=r"^window\.[a-z0-9_]+$",
        description="rule id cited by decisions, e.g. window.no_reason; a late request cites "
        "`<id>.closed`",
    )
    categories: tuple[str, ...] = Field(
        min_length=1, description="product categories it covers, or ['*'] for any"
    )
    reasons: Annotated[tuple[ReasonOrAny, ...], AfterValidator(non_empty)] = Field(
        description="reason codes it covers, or ['*'] for any"
    )
    anchor: Literal["delivery", "payment"] = Field(description="the moment the window opens")
    days: int | None = Field(default=None, gt=0, description="length in calendar days (local time)")
    hours: int | None = Field(default=None, gt=0, description="length in exact hours")
    after: Literal["reject", "manual"] = Field(
        description="what a late request gets: a reject citing the rule, or a manual review "
        "as a special refund"
    )

    @model_validator(mode="after")
    def _one_length(self) -> WindowRule:
        if (self.days is None) == (self.hours is None):
            raise ValueError(f"{self.id}: give exactly one of `days` or `hours`")
        for name, values in (("categories", self.categories), ("reasons", self.reasons)):
            if ANY in values and len(values) > 1:
                raise ValueError(f"{self.id}.{name}: '*' must stand alone")
        return self


class NonRefundableRule(Strict):
    """A class of items that is not refundable, unless the reason overrides it.

    Custom-made goods (engraved jewellery, printed material) cannot be returned
    for changing one's mind, but a quality defect is always the seller's problem.
    """

    id: str = Field(
        pattern=r"^non_refundable\.[a-z0-9_]+$",
        description="rule id, e.g. non_refundable.custom_made",
    )
    custom_made: bool = Field(
        default=True, description="applies to items made to the buyer's order"
    )
    categories: tuple[str, ...] = Field(
        default=(ANY,), min_length=1, description="categories it applies to, or ['*'] for any"
    )
    unless_reasons: tuple[Reason, ...] = Field(
        description="reasons that override the rule (the seller's fault)"
    )
    action: Literal["reject", "manual"] = Field(
        default="reject", description="reject citing the rule, or send to a person"
    )

    @model_validator(mode="after")
    def _not_everything(self) -> NonRefundableRule:
        if not self.custom_made and ANY in self.categories:
            raise ValueError(f"{self.id}: would make every item non-refundable; name categories")
        if ANY in self.categories and len(self.categories) > 1:
            raise ValueError(f"{self.id}.categories: '*' must stand alone")
        return self


class AmountRules(Strict):
    """What a refund may pay: the price of the items returned, as actually paid."""

    exclude_shipping: bool = Field(
        default=True, description="the shipping fee is not refunded (else each item gets its share)"
    )
    exclude_coupons: bool = Field(
        default=True,
        description="coupons/discounts are not paid out: each item's refund is its price less "
        "its proportional share of the order's discount",
    )
    prorata_categories: tuple[str, ...] = Field(
        description="categories refunded for the unused part of their service period "
        "(subscriptions, memberships)"
    )
    rounding: Literal["down"] = Field(
        default="down",
        description="fractions of a minor unit (from pro-rata or a share of a coupon) are "
        "always rounded in the payer's favour — the refund down — so that the refunds of an "
        "order can never add up to more than was paid",
    )


class AutoApproval(Strict):
    """When a request may be approved without a person."""

    limit: AmountByCurrency = Field(description="largest amount approved automatically")
    max_risk: int = Field(ge=0, le=100, description="highest risk score approved automatically")
    outcomes: tuple[DesiredOutcome, ...] = Field(
        default=("full_refund", "partial_refund"),
        description="desired outcomes a rule may grant; others (exchange, compensation) go to "
        "a person (manual.outcome); empty: nothing is approved automatically",
    )
    manual_reasons: tuple[Reason, ...] = Field(
        default=("special_circumstances",),
        description="reasons always reviewed by a person, cited as manual.<reason>",
    )

    @field_validator("manual_reasons")
    @classmethod
    def _special_circumstances_is_manual(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "special_circumstances" not in value:
            raise ValueError(
                "must include special_circumstances: exceptions are granted by a person, "
                "by a documented path"
            )
        return value
