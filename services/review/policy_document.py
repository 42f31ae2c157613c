"""Review's policy as a versioned document: windows, exclusions, amounts, limits, grades.

The numbers the business argues about (7 days, 24 hours, 500 yuan, two approvals)
live in a YAML document, not in code, so that a change of policy is a reviewed
change of data with a new version. Every decision records that version and the
rule id it used (`assessment.assess`), and `policy_digest` pins the exact content.

Loading refuses nonsense early and precisely — a typo in a reason code or a
missing translation must fail at start-up, not when a customer is waiting.

The document's sections: policy_eligibility.py (windows, exclusions, amounts, automatic
approval), policy_grading.py (risk, tiers, approvals), policy_returns.py (which refunds need
the goods back; optional), built from policy_values.py.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from services.review.calendar import WorkingCalendar
from services.review.policy_eligibility import (
    AmountRules,
    AutoApproval,
    NonRefundableRule,
    WindowRule,
)
from services.review.policy_grading import Approvals, RiskModel, Tiers
from services.review.policy_returns import Returns
from services.review.policy_values import RuleName, Strict
from services.review.vocabulary import ANY

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)

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
# A return decision is made after approval: it speaks of the goods, not of the assessment.
RETURN_PLACEHOLDERS = frozenset(
    {"category", "reason", "value", "threshold", "ship_by", "ship_by_days", "receipt_by_days"}
)
# A deduction or an inspection speaks of one item received.
DEDUCTION_PLACEHOLDERS = frozenset({"sku", "category", "price", "deduction", "condition"})
RETURNS_PLACEHOLDERS = {
    "return": RETURN_PLACEHOLDERS,
    "deduction": DEDUCTION_PLACEHOLDERS,
    "inspection": DEDUCTION_PLACEHOLDERS,
}

# Deciding rules that exist whatever the document says (see assessment.assess).
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
    # Optional, and left out of the document when absent: versions published before it
    # existed keep their content and digest, and decide "no return" (refund only).
    returns: Returns | None = Field(
        default=None,
        exclude_if=lambda returns: returns is None,
        description="which refunds need the goods back first; absent: none do",
    )
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

    @field_validator("returns")
    @classmethod
    def _known_return_categories(
        cls, returns: Returns | None, info: ValidationInfo
    ) -> Returns | None:
        for where, categories in returns.categories_named() if returns else ():
            _require_known(categories, info.data.get("categories"), where)
        return returns

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
    if "returns" not in data:
        return None  # the returns section is invalid and already reported
    returns: Returns | None = data.get("returns")
    if returns is not None:
        cited = returns.cited_rules()
        rules |= {rule_id: RETURNS_PLACEHOLDERS[kind] for rule_id, kind in cited.items()}
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
