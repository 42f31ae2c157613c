"""Review's policy as a versioned document: windows, exclusions, amounts, limits, grades.

The numbers the business argues about (7 days, 24 hours, 500 yuan, two approvals)
live in a YAML document, not in code, so that a change of policy is a reviewed
change of data with a new version. Every decision records that version and the
rule id it used (`rules.assess`), and `policy_digest` pins the exact content.

Loading refuses nonsense early and precisely — a typo in a reason code or a
missing translation must fail at start-up, not when a customer is waiting.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.review.calendar import WorkingCalendar
from shared.contracts import DesiredOutcome, Reason
from shared.money import CURRENCY_EXPONENTS

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

# The reason codes intake accepts; a policy naming any other reason would never match.
REASONS: tuple[str, ...] = get_args(Reason)
TierName = Literal["general", "important", "major"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
ANY = "*"

# Placeholders an explanation may use, by the kind of rule it explains.
COMMON_PLACEHOLDERS = frozenset(
    {"requested", "refundable", "amount", "limit", "reason", "risk_score", "appeal_business_days"}
)
WINDOW_PLACEHOLDERS = COMMON_PLACEHOLDERS | {
    "window_days",
    "window_hours",
    "days_late",
    "hours_late",
    "deadline",
    "category",
}
ITEM_PLACEHOLDERS = COMMON_PLACEHOLDERS | {"category", "sku"}

# Deciding rules that exist whatever the document says (see rules.assess).
FIXED_RULE_IDS = frozenset(
    {
        "manual.incomplete",
        "manual.outcome",
        "manual.over_limit",
        "manual.risk",
        "amount.nothing_refundable",
        "auto_approve.within_limit",
    }
)


def _reason_or_any(value: str) -> str:
    if value != ANY and value not in REASONS:
        raise PydanticCustomError(
            "unknown_reason",
            "unknown reason '{value}'; use '*' or one of {known}",
            {"value": value, "known": ", ".join(REASONS)},
        )
    return value


ReasonOrAny = Annotated[str, AfterValidator(_reason_or_any)]


def _non_empty(values: tuple[str, ...]) -> tuple[str, ...]:
    """Instead of min_length, which would also complain when every item was merely misspelt."""
    if not values:
        raise ValueError("must list at least one")
    return values


class Strict(BaseModel):
    """Every policy section: unknown keys are typos, and a loaded policy never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_float(value: Any) -> Any:
    """Amounts are decimal strings; a YAML float (500.10) would already be binary-rounded."""
    if isinstance(value, float):
        raise ValueError(f"write amounts as quoted decimal strings (e.g. '{value}'), not numbers")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


MajorAmount = Annotated[
    str,
    BeforeValidator(_no_float),
    Field(pattern=r"^\d{1,15}(\.\d{1,3})?$", description="a non-negative decimal in major units"),
]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=60)]


class AmountByCurrency(Strict):
    """An amount in major units per currency; `default` applies to any other currency.

    Written `{default: "500.00", JPY: "50000"}`: 500 yuan, 500 dollars … but 50 000
    yen, since one amount in major units means very different money per currency.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    default: MajorAmount = Field(
        description="major units for any currency without its own entry; whole units, so it "
        "applies to zero-decimal currencies (JPY) too"
    )

    @model_validator(mode="before")
    @classmethod
    def _amounts_are_strings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: _no_float(value) for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _currencies_known_and_exact(self) -> AmountByCurrency:
        if Decimal(self.default) != Decimal(self.default).to_integral_value():
            raise ValueError(
                f"default {self.default} must be whole major units, or it cannot apply to "
                "currencies without minor units (JPY); give such currencies their own entry"
            )
        for currency, value in (self.model_extra or {}).items():
            if currency not in CURRENCY_EXPONENTS:
                raise ValueError(f"{currency!r} is not a supported ISO 4217 currency")
            if not isinstance(value, str):
                raise ValueError(f"{currency}: write the amount as a quoted decimal string")
            try:
                amount = Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{currency}: {value!r} is not a decimal amount") from None
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"{currency}: {value!r} must be a non-negative decimal")
            scaled = amount.scaleb(CURRENCY_EXPONENTS[currency])
            if scaled != scaled.to_integral_value():
                raise ValueError(f"{currency}: {value} has more decimals than {currency} allows")
        return self

    def for_currency(self, currency: str) -> str:
        """The major-unit amount that applies to `currency` (its own entry, else default)."""
        value = (self.model_extra or {}).get(currency, self.default)
        return str(value)

    def decimals(self) -> dict[str, Decimal]:
        """Every entry as a Decimal, `default` included (to compare thresholds)."""
        found = {"default": Decimal(self.default)}
        found |= {key: Decimal(str(value)) for key, value in (self.model_extra or {}).items()}
        return found


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
    reasons: Annotated[tuple[ReasonOrAny, ...], AfterValidator(_non_empty)] = Field(
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


class Band(Strict):
    """`points` once a signal reaches `at_least` (the highest band reached counts)."""

    at_least: int = Field(ge=0)
    points: int = Field(ge=0, le=100)


def _increasing(bands: tuple[Band, ...]) -> tuple[Band, ...]:
    for lower, higher in pairwise(bands):
        if higher.at_least <= lower.at_least:
            raise ValueError("bands must have strictly increasing `at_least`")
    return bands


Bands = Annotated[
    tuple[Band, ...],
    AfterValidator(_increasing),
    Field(description="bands by strictly increasing `at_least`"),
]


class RecentRefunds(Strict):
    """High-frequency refunders: refunds by this customer in the 30 days before."""

    bands: Bands


class AmountShare(Strict):
    """A request for most of the order: the amount asked as a percentage of what was paid."""

    bands: Bands


class SoonAfterDelivery(Strict):
    """A refund asked for right after the goods arrived."""

    within_hours: int = Field(gt=0)
    points: int = Field(ge=0, le=100)


class QualityWithoutEvidence(Strict):
    """A claim that blames the goods, without a single photo or document."""

    reasons: Annotated[tuple[Reason, ...], AfterValidator(_non_empty)] = Field(
        description="reasons that blame the goods"
    )
    points: int = Field(ge=0, le=100)


class NewCustomer(Strict):
    """A customer first seen recently (new accounts get the standard path)."""

    within_days: int = Field(gt=0)
    points: int = Field(ge=0, le=100)
    unknown_is_new: bool = Field(default=True, description="no first-seen date counts as new")


class RiskModel(Strict):
    """Points per recorded signal; the score is their sum, capped at 100.

    Thresholds on the score live where they are used: `auto_approval.max_risk`
    and `tiers.*.risk_at_least`.
    """

    recent_refunds: RecentRefunds
    amount_share: AmountShare
    soon_after_delivery: SoonAfterDelivery
    quality_without_evidence: QualityWithoutEvidence
    new_customer: NewCustomer


class TierThreshold(Strict):
    """A case reaches this tier at this amount or this risk score."""

    amount_at_least: AmountByCurrency
    risk_at_least: int = Field(ge=0, le=100)


class Complexity(Strict):
    """Cases that need a higher tier whatever their amount (complexity, not size)."""

    reasons: dict[Reason, TierName] = Field(
        default_factory=dict, description="reason → lowest tier, e.g. special_circumstances"
    )
    liability_disputed: TierName = Field(
        default="important", description="merchant, carrier and platform dispute who pays"
    )
    rule_exception: TierName = Field(
        default="important",
        description="the rules decline (late, non-refundable): granting it anyway is an exception",
    )


class Tiers(Strict):
    """general < important < major, by amount, risk and complexity."""

    important: TierThreshold
    major: TierThreshold
    complexity: Complexity = Complexity()

    @model_validator(mode="after")
    def _increasing(self) -> Tiers:
        if self.major.risk_at_least <= self.important.risk_at_least:
            raise ValueError(
                f"major.risk_at_least ({self.major.risk_at_least}) must be greater than "
                f"important.risk_at_least ({self.important.risk_at_least})"
            )
        important, major = self.important.amount_at_least, self.major.amount_at_least
        for currency in sorted(important.decimals().keys() | major.decimals().keys()):
            low, high = important.for_currency(currency), major.for_currency(currency)
            if Decimal(high) <= Decimal(low):
                raise ValueError(
                    f"major.amount_at_least.{currency} ({high}) must be greater than "
                    f"important.amount_at_least.{currency} ({low})"
                )
        return self


class ApprovalRule(Strict):
    """Separation of duties for one tier: how many distinct people must approve."""

    count: int = Field(ge=1, le=5, description="distinct approvers (never the case's raiser)")
    senior: bool = Field(default=False, description="one approver must be a senior_reviewer")
    finance_above: AmountByCurrency | None = Field(
        default=None, description="above this amount one approver must be from finance"
    )


class Approvals(Strict):
    general: ApprovalRule
    important: ApprovalRule
    major: ApprovalRule

    @model_validator(mode="after")
    def _not_decreasing(self) -> Approvals:
        if not self.general.count <= self.important.count <= self.major.count:
            raise ValueError("counts must not decrease from general to important to major")
        return self


class Sla(Strict):
    """Deadlines per stage, in business days of `calendar`."""

    review_business_days: int = Field(gt=0, description="from request to decision")
    evidence_business_days: int = Field(gt=0, description="the customer's time to add evidence")
    reminder_before_hours: int = Field(ge=0, description="remind the assignee this long before")
    appeal_business_days: int = Field(gt=0, description="to answer an appeal or complaint")


class CalendarPolicy(Strict):
    """The working calendar deadlines are counted in, and the time zone of calendar days."""

    timezone: str = Field(default="Asia/Shanghai", description="IANA zone of the business")
    workdays: tuple[Weekday, ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri"),
        min_length=1,
        description="regular working weekdays",
    )
    holidays: tuple[date, ...] = Field(default=(), description="public holidays (no work)")
    working_weekends: tuple[date, ...] = Field(
        default=(), description="make-up working days on a weekend (调休), as published each year"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("holidays", "working_weekends")
    @classmethod
    def _sorted(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _consistent(self) -> CalendarPolicy:
        if len(set(self.workdays)) != len(self.workdays):
            raise ValueError("workdays: a weekday is listed twice")
        both = set(self.holidays) & set(self.working_weekends)
        if both:
            raise ValueError(f"holidays and working_weekends both list {sorted(both)}")
        return self

    def working_calendar(self) -> WorkingCalendar:
        return WorkingCalendar(
            timezone=self.timezone,
            workdays=frozenset(WEEKDAYS.index(day) for day in self.workdays),
            holidays=frozenset(self.holidays),
            working_weekends=frozenset(self.working_weekends),
        )


class Explanation(Strict):
    """What the customer reads about a decision, in each locale, with {placeholders}."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    zh_CN: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)

    def as_dict(self) -> dict[str, str]:
        return {"zh-CN": self.zh_CN, "en": self.en}


class Policy(Strict):
    """The whole refund policy, one version."""

    version: str = Field(
        pattern=r"^\S+$", max_length=40, description="recorded with every decision, e.g. 2026-11-01"
    )
    description: str = ""
    categories: tuple[RuleName, ...] = Field(
        min_length=1,
        description="product categories the policy knows; rules may only name these (an item "
        "of another category only meets rules for '*')",
    )
    windows: tuple[WindowRule, ...]
    non_refundable: tuple[NonRefundableRule, ...]
    amounts: AmountRules
    auto_approval: AutoApproval
    risk: RiskModel
    tiers: Tiers
    approvals: Approvals
    sla: Sla
    calendar: CalendarPolicy = CalendarPolicy()
    explanations: dict[str, Explanation] = Field(
        description="for every rule id a decision can cite: the customer-facing text"
    )

    @field_validator("windows", "non_refundable")
    @classmethod
    def _known_categories_unique_ids(
        cls, rules: tuple[WindowRule | NonRefundableRule, ...], info: ValidationInfo
    ) -> tuple[WindowRule | NonRefundableRule, ...]:
        ids = [rule.id for rule in rules]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique: {duplicates}")
        known = info.data.get("categories")
        for i, rule in enumerate(rules):
            _require_known(rule.categories, known, f"{i}.categories ({rule.id})")
        return rules

    @field_validator("amounts")
    @classmethod
    def _known_prorata(cls, amounts: AmountRules, info: ValidationInfo) -> AmountRules:
        _require_known(
            amounts.prorata_categories, info.data.get("categories"), "prorata_categories"
        )
        return amounts

    @field_validator("explanations")
    @classmethod
    def _explain_every_rule(
        cls, explanations: dict[str, Explanation], info: ValidationInfo
    ) -> dict[str, Explanation]:
        expected = _deciding_rules(info.data)
        if expected is None:
            return explanations  # an earlier section is invalid and already reported
        missing = sorted(expected.keys() - explanations.keys())
        if missing:
            raise ValueError(f"no explanation for rule ids {missing}")
        unknown = sorted(explanations.keys() - expected.keys())
        if unknown:
            raise ValueError(f"explanations for rule ids no decision cites: {unknown}")
        for rule_id, explanation in explanations.items():
            for locale, text in explanation.as_dict().items():
                used = _placeholders(text, f"{rule_id}.{locale}")
                wrong = sorted(used - expected[rule_id])
                if wrong:
                    raise ValueError(
                        f"{rule_id}.{locale}: unknown placeholders {wrong}; "
                        f"allowed: {sorted(expected[rule_id])}"
                    )
        return explanations

    def rule_ids(self) -> frozenset[str]:
        """Every rule id a decision under this policy can cite."""
        return frozenset(self.explanations)

    def working_calendar(self) -> WorkingCalendar:
        return self.calendar.working_calendar()


def _require_known(names: Iterable[str], known: tuple[str, ...] | None, where: str) -> None:
    if known is None:
        return
    for name in names:
        if name != ANY and name not in known:
            raise ValueError(f"{where}: unknown category {name!r}; declare it under `categories`")


def _deciding_rules(data: dict[str, Any]) -> dict[str, frozenset[str]] | None:
    """Rule id → placeholders its explanation may use; None if a section failed validation."""
    windows, exclusions, auto = (
        data.get(k) for k in ("windows", "non_refundable", "auto_approval")
    )
    if windows is None or exclusions is None or auto is None:
        return None
    rules: dict[str, frozenset[str]] = dict.fromkeys(FIXED_RULE_IDS, COMMON_PLACEHOLDERS)
    rules |= {f"{window.id}.closed": WINDOW_PLACEHOLDERS for window in windows}
    rules |= {rule.id: ITEM_PLACEHOLDERS for rule in exclusions}
    rules |= {f"manual.{reason}": COMMON_PLACEHOLDERS for reason in auto.manual_reasons}
    return rules


def _placeholders(text: str, where: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise ValueError(f"{where}: {error} (write a literal brace as {{{{ or }}}})") from None


def load_policy(text_or_path: str | Path) -> Policy:
    """Parse and validate a policy given as YAML or JSON text, or as a path to such a file.

    Raises pydantic.ValidationError naming each bad field, or ValueError when
    the text is not YAML/JSON at all.
    """
    text = text_or_path.read_text("utf-8") if isinstance(text_or_path, Path) else text_or_path
    if isinstance(text_or_path, str) and "\n" not in text and len(text) < 1024:
        candidate = Path(text)
        if candidate.suffix in {".yaml", ".yml", ".json"} and candidate.is_file():
            text = candidate.read_text("utf-8")
    try:
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"the policy is not valid YAML/JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("the policy must be a mapping (version, windows, ...)")
    return Policy.model_validate(document)


def default_policy() -> Policy:
    """The policy the review service ships with (default_policy.yaml next to this module)."""
    return load_policy(DEFAULT_POLICY_PATH)


def policy_digest(policy: Policy) -> str:
    """sha256 of the policy's canonical JSON: the same rules give the same digest, whatever
    the YAML's layout, comments or key order — record it next to the version."""
    canonical = json.dumps(
        policy.model_dump(mode="json", by_alias=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
