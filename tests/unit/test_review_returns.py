"""The return policy (退货退款 vs 仅退款): the `returns:` section loads or is refused naming the
field, and the pure decision says whether goods come back, where to, by when, and what an
inspection deducts — exactly, in minor units."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
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
from services.review.return_rules import (
    InspectedItem,
    ReturnFacts,
    ReturnItem,
    deduction,
    return_deadline,
    return_decision,
)
from services.review.vocabulary import HEAVY_DAMAGE, NO_DEDUCTION_RULE, WRONG_ITEM
from shared.money import Money

EXAMPLE_PATH = Path(DEFAULT_POLICY_PATH).with_name("example_return_policy.yaml")
EXAMPLE: dict[str, Any] = yaml.safe_load(EXAMPLE_PATH.read_text("utf-8"))
APPROVED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 11:00 on Tue 10 Nov in Shanghai


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def policy(doc: dict[str, Any] | None = None) -> Policy:
    return Policy.model_validate(doc if doc is not None else EXAMPLE)


def refused(doc: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(doc)
    return caught.value


def located(error: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in error.errors()]


def item(category: str = "apparel", price: int = 19900, currency: str = "CNY") -> ReturnItem:
    money = Money(price, currency)
    return ReturnItem(
        sku=f"SKU-{category}", category=category, quantity=1, unit_price=money, price=money
    )


def facts(reason: str, *items: ReturnItem, outcome: str = "full_refund", **kw: Any) -> ReturnFacts:
    return ReturnFacts(
        reason=reason,
        desired_outcome=outcome,
        items=items or (item(),),
        approved_at=APPROVED,
        **kw,
    )


class TestTheIssuesExamples:
    def test_no_reason_return_is_required_with_address_and_ship_by(self) -> None:
        decided = return_decision(facts("changed_mind"), policy())
        assert decided.return_required and decided.rule == "return.no_reason"
        assert decided.address is not None and decided.address.postcode == "201203"
        assert decided.ship_by is not None
        # 7 calendar days from the day after approval, to Shanghai midnight: 24:00 on the 17th.
        assert decided.ship_by.due == datetime(2026, 11, 17, 16, 0, tzinfo=UTC)
        assert decided.ship_by.remind_at == datetime(2026, 11, 15, 16, 0, tzinfo=UTC)
        assert decided.parameters["ship_by"] == "2026-11-18 00:00"
        assert "2026-11-18 00:00" in decided.explanation["zh-CN"]
        assert "within 7 days" in decided.explanation["en"]
        assert decided.policy_version == "2027-01-01-returns"

    def test_wrong_size_return_is_required(self) -> None:
        # There is no wrong_size reason code: ordering the wrong size is customer_error.
        decided = return_decision(facts("customer_error"), policy())
        assert (decided.return_required, decided.rule) == (True, "return.wrong_size")

    def test_not_received_is_refund_only(self) -> None:
        decided = return_decision(facts("not_received"), policy())
        assert (decided.return_required, decided.rule) == (False, "return.not_received")
        assert decided.address is None and decided.ship_by is None
        assert decided.explanation["en"].startswith("You did not receive")

    def test_damaged_under_the_value_is_refund_only_and_above_it_returns(self) -> None:
        cheap = return_decision(facts("damaged", item(price=4999)), policy())
        assert (cheap.return_required, cheap.rule) == (False, "return.damaged_low_value")
        assert cheap.explanation["en"] == (
            "The item is worth CNY 49.99, less than CNY 50.00, so you need not send it back; "
            "your refund goes ahead."
        )
        at_threshold = return_decision(facts("damaged", item(price=5000)), policy())
        assert (at_threshold.return_required, at_threshold.rule) == (True, "return.seller_fault")

    def test_threshold_per_currency(self) -> None:
        # JPY has its own entry (5000 yen); USD falls back to `default` (50.00 dollars).
        assert not return_decision(
            facts("damaged", item(price=4999, currency="JPY")), policy()
        ).return_required
        assert return_decision(
            facts("damaged", item(price=5000, currency="JPY")), policy()
        ).return_required
        assert not return_decision(
            facts("damaged", item(price=4999, currency="USD")), policy()
        ).return_required
        assert return_decision(
            facts("damaged", item(price=5001, currency="USD")), policy()
        ).return_required
        # KWD has three decimals: 50.000 dinars is 50000 minor units.
        assert not return_decision(
            facts("damaged", item(price=49999, currency="KWD")), policy()
        ).return_required


class TestRuleOrder:
    def test_first_match_wins(self) -> None:
        # Software bought without a reason: nothing_to_ship comes before no_reason.
        decided = return_decision(facts("changed_mind", item("software")), policy())
        assert (decided.return_required, decided.rule) == (False, "return.nothing_to_ship")
        doc = example()
        rules = doc["returns"]["rules"]
        at = next(i for i, rule in enumerate(rules) if rule["id"] == "return.no_reason")
        rules.insert(0, rules.pop(at))
        moved = return_decision(facts("changed_mind", item("software")), policy(doc))
        assert (moved.return_required, moved.rule) == (True, "return.no_reason")

    def test_default_rule_when_nothing_matches(self) -> None:
        decided = return_decision(facts("duplicate_charge"), policy())
        assert (decided.return_required, decided.rule) == (False, "return.default")
        doc = example()
        doc["returns"]["default"] = {"id": "return.default", "return_required": True}
        assert return_decision(facts("duplicate_charge"), policy(doc)).return_required

    def test_desired_outcome_matches(self) -> None:
        decided = return_decision(facts("changed_mind", outcome="compensation"), policy())
        assert (decided.return_required, decided.rule) == (False, "return.compensation")
        exchange = return_decision(facts("changed_mind", outcome="exchange"), policy())
        assert (exchange.return_required, exchange.rule) == (True, "return.no_reason")

    def test_one_item_to_return_makes_the_refund_a_return_citing_that_items_rule(self) -> None:
        decided = return_decision(
            facts("changed_mind", item("software"), item("apparel")), policy()
        )
        assert decided.return_required and decided.rule == "return.no_reason"
        assert [i.sku for i in decided.items_to_return] == ["SKU-apparel"]
        assert [i.rule for i in decided.items] == ["return.nothing_to_ship", "return.no_reason"]

    def test_address_by_warehouse_then_merchant_then_default(self) -> None:
        doc = example()
        doc["returns"]["addresses"]["merchants"] = {
            "m_acme": {
                "name": "Acme",
                "phone": "+86 10 5555 0300",
                "lines": ["北京"],
                "postcode": "100000",
            }
        }
        p = policy(doc)
        by = {
            (None, None): "201203",
            ("m_acme", None): "100000",
            ("m_acme", "wh_shenzhen"): "518057",
            ("m_other", "wh_other"): "201203",
        }
        for (merchant, warehouse), postcode in by.items():
            decided = return_decision(
                facts("changed_mind", merchant_id=merchant, warehouse_id=warehouse), p
            )
            assert decided.address is not None and decided.address.postcode == postcode


class TestDeadlines:
    def test_receipt_by_after_delivery_in_calendar_days(self) -> None:
        delivered = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # 23:30 on the 20th in Shanghai
        deadline = return_deadline("receipt", delivered, policy())
        assert deadline is not None
        assert deadline.due == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 24:00 on the 27th
        assert deadline.remind_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)

    def test_business_days_use_the_policys_calendar(self) -> None:
        doc = example()
        doc["returns"]["deadlines"]["business_days"] = True
        # Approved 11:00 Wed 30 Sep in Shanghai; 1-7 Oct are holidays and weekends are off:
        # the 7th working day after it is Fri 16 Oct (8, 9, 12, 13, 14, 15, 16), at 11:00;
        # the reminder 2 business days earlier, 11:00 on Wed 14 Oct.
        approved = datetime(2026, 9, 30, 3, 0, tzinfo=UTC)
        decided = return_decision(
            ReturnFacts("changed_mind", "full_refund", (item(),), approved), policy(doc)
        )
        assert decided.ship_by is not None
        assert decided.ship_by.due == datetime(2026, 10, 16, 3, 0, tzinfo=UTC)
        assert decided.ship_by.remind_at == datetime(2026, 10, 14, 3, 0, tzinfo=UTC)


class TestDeductions:
    def inspect(self, condition: str, price: int = 19900, **kw: Any) -> InspectedItem:
        quantity = kw.pop("quantity", 1)
        return InspectedItem(
            sku="SKU-1",
            category=kw.pop("category", "apparel"),
            quantity=quantity,
            unit_price=Money(price // quantity, "CNY"),
            price=Money(price, "CNY"),
            condition=condition,
            **kw,
        )  # type: ignore[arg-type]

    def test_as_expected_without_a_fee_deducts_nothing(self) -> None:
        found = deduction(self.inspect("as_expected"), "changed_mind", policy())
        assert (found.outcome, found.amount, found.rule) == ("pay", Money(0, "CNY"), None)
        assert found.pays == Money(19900, "CNY")

    def test_restocking_fee_basis_points_rounded_down(self) -> None:
        # 10% of 1999.99 yuan is 199.999 → 199.99 (down, in the customer's favour).
        fee = deduction(
            self.inspect("as_expected", 199999, category="electronics"), "changed_mind", policy()
        )
        assert (fee.rule, fee.amount, fee.pays) == (
            "deduction.restocking_electronics",
            Money(19999, "CNY"),
            Money(180000, "CNY"),
        )
        assert "CNY 199.99" in fee.explanation["en"]

    def test_restocking_fee_capped_per_unit(self) -> None:
        # 10% of 5000.00 is 500.00, capped at 200.00 per unit: two units, 400.00.
        fee = deduction(
            self.inspect("as_expected", 500000, category="electronics", quantity=2),
            "changed_mind",
            policy(),
        )
        assert fee.amount == Money(40000, "CNY")

    def test_restocking_fee_only_for_its_reason(self) -> None:
        faulty = deduction(
            self.inspect("as_expected", 199999, category="electronics"), "quality_defect", policy()
        )
        assert faulty.amount == Money(0, "CNY") and faulty.rule is None

    def test_missing_parts_basis_points_plus_fixed_per_unit(self) -> None:
        # 15% of 333.33 = 49.9995 → 49.99, plus 10.00 per unit = 59.99.
        missing = deduction(self.inspect("missing_parts", 33333), "changed_mind", policy())
        assert (missing.rule, missing.amount) == ("deduction.missing_parts", Money(5999, "CNY"))

    def test_never_more_than_the_price(self) -> None:
        missing = deduction(self.inspect("missing_parts", 500), "changed_mind", policy())
        assert missing.amount == Money(500, "CNY") and missing.pays == Money(0, "CNY")

    def test_damage_by_the_customer(self) -> None:
        damaged = deduction(self.inspect("damaged_by_customer", 10001), "changed_mind", policy())
        assert (damaged.rule, damaged.amount) == (
            "deduction.damaged_by_customer",
            Money(3000, "CNY"),
        )

    def test_wrong_item_and_heavy_damage_go_back_to_a_reviewer(self) -> None:
        wrong = deduction(self.inspect("wrong_item"), "changed_mind", policy())
        heavy = deduction(
            self.inspect("damaged_by_customer", heavy_damage=True), "changed_mind", policy()
        )
        for found, rule in ((wrong, WRONG_ITEM), (heavy, HEAVY_DAMAGE)):
            assert (found.outcome, found.rule, found.pays) == ("reviewer", rule, None)
            assert found.explanation["en"]

    def test_no_rule_for_the_condition_goes_to_a_reviewer(self) -> None:
        doc = example()
        del doc["returns"]["deductions"]["missing_parts"]
        del doc["explanations"]["deduction.missing_parts"]
        found = deduction(self.inspect("missing_parts"), "changed_mind", policy(doc))
        assert (found.outcome, found.rule) == ("reviewer", NO_DEDUCTION_RULE)

    def test_jpy_has_no_minor_units(self) -> None:
        item = InspectedItem(
            sku="SKU-1",
            category="electronics",
            quantity=1,
            unit_price=Money(12345, "JPY"),
            price=Money(12345, "JPY"),
            condition="as_expected",
        )
        assert deduction(item, "changed_mind", policy()).amount == Money(1234, "JPY")


class TestOldDocuments:
    def test_a_document_without_returns_loads_and_decides_no_return(self) -> None:
        shipped = default_policy()
        assert shipped.returns is None
        decided = return_decision(facts("changed_mind"), shipped)
        assert (decided.return_required, decided.rule) == (False, "return.not_configured")
        assert decided.address is None and decided.ship_by is None
        assert all(not i.return_required for i in decided.items)
        assert return_deadline("receipt", APPROVED, shipped) is None

    def test_the_absent_section_changes_neither_the_document_nor_its_digest(self) -> None:
        shipped = default_policy()
        dumped = shipped.model_dump(mode="json", by_alias=True)
        assert "returns" not in dumped
        assert dumped == yaml.safe_load(yaml.safe_dump(dumped))
        assert policy_digest(Policy.model_validate(dumped)) == policy_digest(shipped)
        # The digest of the shipped 2026-11-01 policy, as published and recorded.
        assert policy_digest(shipped) == (
            "d0d0b922558d98908465bc9727c859ea4a022284aaaa75ce62fa3e35365d0617"
        )

    def test_the_example_round_trips(self) -> None:
        loaded = load_policy(EXAMPLE_PATH)
        dumped = loaded.model_dump(mode="json", by_alias=True)
        assert Policy.model_validate(dumped) == loaded
        assert policy_digest(Policy.model_validate(dumped)) == policy_digest(loaded)


class TestBadDocumentsAreRefused:
    def test_unknown_category(self) -> None:
        doc = example()
        doc["returns"]["rules"][1]["categories"] = ["sofware"]
        [(where, message)] = located(refused(doc))
        assert where == "returns"
        assert "rules.1.categories (return.nothing_to_ship)" in message and "'sofware'" in message

    def test_unknown_category_in_a_restocking_fee(self) -> None:
        doc = example()
        doc["returns"]["deductions"]["restocking"][0]["categories"] = ["gadgets"]
        [(where, message)] = located(refused(doc))
        assert where == "returns" and "deductions.restocking.0.categories" in message

    def test_unknown_reason(self) -> None:
        doc = example()
        doc["returns"]["rules"][0]["reasons"] = ["not_recieved"]
        [(where, message)] = located(refused(doc))
        assert where == "returns.rules.0.reasons.0" and "unknown reason 'not_recieved'" in message

    def test_unknown_outcome(self) -> None:
        doc = example()
        doc["returns"]["rules"][2]["outcomes"] = ["refund"]
        [(where, message)] = located(refused(doc))
        assert where == "returns.rules.2.outcomes.0" and "unknown desired outcome" in message

    @pytest.mark.parametrize(
        "field", ["ship_by_days", "receipt_by_days", "ship_reminder_days_before"]
    )
    def test_negative_days(self, field: str) -> None:
        doc = example()
        doc["returns"]["deadlines"][field] = -1
        [(where, message)] = located(refused(doc))
        assert where == f"returns.deadlines.{field}" and "greater than" in message

    def test_reminder_not_before_the_deadline(self) -> None:
        doc = example()
        doc["returns"]["deadlines"]["ship_reminder_days_before"] = 7
        [(where, message)] = located(refused(doc))
        assert where == "returns.deadlines" and "ship_reminder_days_before" in message

    def test_missing_translation(self) -> None:
        doc = example()
        del doc["explanations"]["return.no_reason"]["en"]
        [(where, _)] = located(refused(doc))
        assert where == "explanations.return.no_reason.en"

    def test_missing_explanation_of_a_return_rule(self) -> None:
        doc = example()
        del doc["explanations"]["deduction.missing_parts"]
        [(where, message)] = located(refused(doc))
        assert where == "explanations" and "deduction.missing_parts" in message

    def test_placeholder_of_another_kind(self) -> None:
        doc = example()
        doc["explanations"]["return.no_reason"]["en"] = "Ship by {deadline}"
        [(where, message)] = located(refused(doc))
        assert where == "explanations" and "unknown placeholders ['deadline']" in message

    def test_duplicate_rule_id(self) -> None:
        doc = example()
        doc["returns"]["rules"][1]["id"] = "return.not_received"
        [(where, message)] = located(refused(doc))
        assert where == "returns" and "return.not_received" in message

    def test_a_float_threshold(self) -> None:
        doc = example()
        doc["returns"]["rules"][3]["value_below"]["default"] = 50.5
        [(where, message)] = located(refused(doc))
        assert where == "returns.rules.3.value_below" and "quoted decimal" in message

    def test_a_deduction_that_deducts_nothing(self) -> None:
        doc = example()
        doc["returns"]["deductions"]["damaged_by_customer"]["basis_points"] = 0
        [(where, message)] = located(refused(doc))
        assert where == "returns.deductions.damaged_by_customer" and "basis_points" in message

    def test_basis_points_above_everything(self) -> None:
        doc = example()
        doc["returns"]["deductions"]["missing_parts"]["basis_points"] = 10001
        [(where, _)] = located(refused(doc))
        assert where == "returns.deductions.missing_parts.basis_points"

    def test_unknown_key(self) -> None:
        doc = example()
        doc["returns"]["addresses"]["default"]["city"] = "上海"
        [(where, _)] = located(refused(doc))
        assert where == "returns.addresses.default.city"
