"""Review's policy document: the default loads, nonsense is refused naming the field."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.review.policy_document import (
    DEFAULT_POLICY_PATH,
    Policy,
    default_policy,
    load_policy,
    policy_digest,
)

DOCUMENT: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text("utf-8"))


def document() -> dict[str, Any]:
    return copy.deepcopy(DOCUMENT)


def refused(doc: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(doc)
    return caught.value


def locations(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in e["loc"]) for e in error.errors()]


def window(policy: Policy, rule_id: str) -> Any:
    return next(w for w in policy.windows if w.id == rule_id)


class TestDefaultPolicy:
    def test_loads_with_the_domain_defaults(self) -> None:
        policy = default_policy()
        assert policy.version == "2026-11-01"
        no_reason = window(policy, "window.no_reason")
        assert (no_reason.days, no_reason.reasons, no_reason.anchor) == (
            7,
            ("changed_mind",),
            "delivery",
        )
        assert window(policy, "window.software").days == 30
        assert window(policy, "window.fresh_food").hours == 24
        assert policy.amounts.exclude_shipping and policy.amounts.exclude_coupons
        assert set(policy.amounts.prorata_categories) == {"subscription", "membership"}
        assert policy.auto_approval.limit.for_currency("CNY") == "500.00"
        assert policy.auto_approval.limit.for_currency("JPY") == "50000"
        assert "special_circumstances" in policy.auto_approval.manual_reasons
        assert (policy.approvals.general.count, policy.approvals.important.count) == (1, 2)
        assert policy.approvals.major.count == 2 and policy.approvals.major.senior
        assert policy.sla.review_business_days == 1 and policy.sla.appeal_business_days == 3
        assert policy.calendar.timezone == "Asia/Shanghai"

    def test_every_citable_rule_is_explained_in_both_locales(self) -> None:
        policy = default_policy()
        assert policy.rule_ids() == {
            "window.fresh_food.closed",
            "window.software.closed",
            "window.no_reason.closed",
            "window.after_sales.closed",
            "non_refundable.custom_made",
            "manual.special_circumstances",
            "manual.incomplete",
            "manual.outcome",
            "manual.over_limit",
            "manual.risk",
            "amount.nothing_refundable",
            "auto_approve.within_limit",
        }
        for explanation in policy.explanations.values():
            assert explanation.zh_CN and explanation.en

    def test_working_calendar_has_the_national_day(self) -> None:
        calendar = default_policy().working_calendar()
        assert not calendar.is_working_day(date(2026, 10, 1))
        assert calendar.is_working_day(date(2026, 10, 8))
        assert calendar.timezone == "Asia/Shanghai"

    def test_loaded_policy_cannot_be_changed(self) -> None:
        with pytest.raises(ValidationError):
            default_policy().version = "x"  # type: ignore[misc]


class TestLoading:
    def test_yaml_json_and_path_give_the_same_policy(self, tmp_path: Path) -> None:
        from_yaml = load_policy(DEFAULT_POLICY_PATH.read_text("utf-8"))
        from_json = load_policy(json.dumps(DOCUMENT, default=str, ensure_ascii=False))
        saved = tmp_path / "policy.yaml"
        saved.write_text(DEFAULT_POLICY_PATH.read_text("utf-8"), "utf-8")
        assert from_yaml == from_json == load_policy(saved) == load_policy(str(saved))

    def test_not_a_document(self) -> None:
        with pytest.raises(ValueError, match="not valid YAML"):
            load_policy("version: [unclosed\n")
        with pytest.raises(ValueError, match="mapping"):
            load_policy("- a list\n- of things\n")


class TestDigest:
    def test_stable_whatever_the_layout(self) -> None:
        reordered = dict(reversed(list(document().items())))
        text = "# a comment\n" + yaml.safe_dump(reordered, allow_unicode=True, sort_keys=True)
        digest = policy_digest(default_policy())
        assert digest == policy_digest(load_policy(text))
        assert digest == policy_digest(default_policy())
        assert len(digest) == 64 and int(digest, 16) >= 0

    def test_changes_with_any_rule(self) -> None:
        doc = document()
        doc["windows"][2]["days"] = 8
        assert policy_digest(Policy.model_validate(doc)) != policy_digest(default_policy())


class TestRefusals:
    def test_negative_duration(self) -> None:
        doc = document()
        doc["windows"][2]["days"] = -7
        error = refused(doc)
        assert locations(error) == ["windows.2.days"]
        assert "greater than 0" in str(error)

    def test_days_and_hours_together(self) -> None:
        doc = document()
        doc["windows"][0]["days"] = 1
        assert "exactly one of `days` or `hours`" in str(refused(doc))

    def test_unknown_reason(self) -> None:
        doc = document()
        doc["windows"][2]["reasons"] = ["chnaged_mind"]
        error = refused(doc)
        assert all(loc.startswith("windows.2.reasons.0") for loc in locations(error))
        assert "changed_mind" in str(error)  # the message lists the valid codes

    def test_unknown_category(self) -> None:
        doc = document()
        doc["windows"][1]["categories"] = ["sofware"]
        error = refused(doc)
        assert locations(error) == ["windows"]
        assert "1.categories (window.software): unknown category 'sofware'" in str(error)
        doc = document()
        doc["amounts"]["prorata_categories"] = ["subscriptions"]
        assert "prorata_categories: unknown category 'subscriptions'" in str(refused(doc))

    def test_explanation_missing_a_locale(self) -> None:
        doc = document()
        del doc["explanations"]["window.no_reason.closed"]["zh-CN"]
        error = refused(doc)
        assert locations(error) == ["explanations.window.no_reason.closed.zh-CN"]

    def test_explanation_missing_for_a_rule(self) -> None:
        doc = document()
        del doc["explanations"]["non_refundable.custom_made"]
        assert "no explanation for rule ids ['non_refundable.custom_made']" in str(refused(doc))

    def test_explanation_for_no_rule(self) -> None:
        doc = document()
        doc["explanations"]["window.typo.closed"] = {"zh-CN": "x", "en": "x"}
        assert "['window.typo.closed']" in str(refused(doc))

    def test_explanation_with_unknown_placeholder(self) -> None:
        doc = document()
        doc["explanations"]["manual.risk"]["en"] = "Late by {days_late} days"
        error = str(refused(doc))
        assert "manual.risk.en: unknown placeholders ['days_late']" in error

    def test_tiers_must_increase(self) -> None:
        doc = document()
        doc["tiers"]["major"]["amount_at_least"]["default"] = "1000.00"
        assert "major.amount_at_least.default (1000.00) must be greater than" in str(refused(doc))
        doc = document()
        doc["tiers"]["major"]["amount_at_least"]["JPY"] = "100000"
        assert "major.amount_at_least.JPY (100000)" in str(refused(doc))
        doc = document()
        doc["tiers"]["major"]["risk_at_least"] = 40
        assert "major.risk_at_least (40) must be greater" in str(refused(doc))

    def test_approvals_need_at_least_one_person(self) -> None:
        doc = document()
        doc["approvals"]["general"]["count"] = 0
        assert locations(refused(doc)) == ["approvals.general.count"]

    def test_unknown_keys_are_typos(self) -> None:
        doc = document()
        doc["amounts"]["exclude_shiping"] = False
        error = refused(doc)
        assert locations(error) == ["amounts.exclude_shiping"]
        assert error.errors()[0]["type"] == "extra_forbidden"

    def test_amounts_are_decimal_strings_in_known_currencies(self) -> None:
        doc = document()
        doc["auto_approval"]["limit"]["default"] = 500.1
        assert "quoted decimal strings" in str(refused(doc))
        doc = document()
        doc["auto_approval"]["limit"]["default"] = "500.50"
        assert "whole major units" in str(refused(doc))
        doc = document()
        doc["auto_approval"]["limit"]["KWD"] = "1.0005"
        assert "auto_approval.limit" in locations(refused(doc))[0]
        doc = document()
        doc["auto_approval"]["limit"]["XXX"] = "1"
        assert "'XXX' is not a supported ISO 4217 currency" in str(refused(doc))

    def test_special_circumstances_always_go_to_a_person(self) -> None:
        doc = document()
        doc["auto_approval"]["manual_reasons"] = []
        assert locations(refused(doc)) == ["auto_approval.manual_reasons"]

    def test_calendar(self) -> None:
        doc = document()
        doc["calendar"]["timezone"] = "Asia/Beijing"
        assert "unknown time zone 'Asia/Beijing'" in str(refused(doc))
        doc = document()
        doc["calendar"]["working_weekends"] = ["2026-10-03"]
        assert "both list" in str(refused(doc))
        doc = document()
        doc["calendar"]["workdays"] = ["mon", "funday"]
        assert locations(refused(doc)) == ["calendar.workdays.1"]

    def test_risk_bands_must_increase(self) -> None:
        doc = document()
        doc["risk"]["recent_refunds"]["bands"] = [
            {"at_least": 4, "points": 10},
            {"at_least": 2, "points": 20},
        ]
        error = refused(doc)
        assert locations(error) == ["risk.recent_refunds.bands"]
        assert "strictly increasing" in str(error)

    def test_custom_made_rule_cannot_swallow_everything(self) -> None:
        doc = document()
        doc["non_refundable"][0]["custom_made"] = False
        assert "every item non-refundable" in str(refused(doc))
