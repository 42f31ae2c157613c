"""Pure domain rules of review and payout, and money, in memory (intake: test_intake_domain)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.payout.domain import Payout, PayoutAlreadySettled, expected_arrival
from shared.money import CurrencyMismatch, Money

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday


class TestMoney:
    def test_exponents_follow_iso_4217(self) -> None:
        assert Money.from_major("500.00", "CNY") == Money(50000, "CNY")
        assert Money.from_major("500", "JPY") == Money(500, "JPY")
        assert Money.from_major("1.234", "KWD") == Money(1234, "KWD")

    def test_sub_minor_digits_and_floats_are_refused(self) -> None:
        with pytest.raises(ValueError):
            Money.from_major("1.005", "CNY")
        with pytest.raises(TypeError):
            Money(1.5, "CNY")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Money(1, "XXX")

    def test_currencies_never_mix(self) -> None:
        with pytest.raises(CurrencyMismatch):
            _ = Money(1, "CNY") + Money(1, "USD")
        assert Money(1, "CNY") + Money(2, "CNY") == Money(3, "CNY")
        assert Money(12900, "CNY").format() == "CNY 129.00"


class TestPayout:
    def payout(self) -> Payout:
        return Payout(
            approval_id="ap-1",
            refund_id="rf_1",
            tenant="t",
            amount=Money(100, "CNY"),
            method="card",
            payment_reference="r",
            causation_id="ap-1",
            payment_currency=None,
        )

    def test_merchant_refund_number_derives_from_the_approval(self) -> None:
        assert self.payout().merchant_refund_no == self.payout().merchant_refund_no
        assert self.payout().merchant_refund_no.startswith("po_")

    def test_settles_once(self) -> None:
        payout = self.payout()
        payout.record_failed_attempt("503", NOW)
        payout.succeed("gw_1", NOW)
        assert payout.status == "paid"
        with pytest.raises(PayoutAlreadySettled):
            payout.succeed("gw_2", NOW)
        with pytest.raises(PayoutAlreadySettled):
            payout.fail("late", NOW)

    def test_expected_arrival_counts_business_days(self) -> None:
        assert expected_arrival("alipay", NOW) == NOW
        assert expected_arrival("card", NOW).weekday() == 2  # Fri + 3 business days = Wed
        assert expected_arrival("bank_transfer", NOW).weekday() == 1


FRAMEWORKS = {"fastapi", "aiokafka", "httpx", "psycopg", "pydantic", "starlette", "uvicorn"}


DOMAIN_MODULES = [
    "intake/domain.py",
    "intake/returns.py",
    "intake/lifecycle.py",
    "intake/orders.py",
    "intake/tenants.py",
    "intake/erasure.py",
    "review/domain.py",
    "review/duties.py",
    "review/vocabulary.py",
    "review/customers.py",
    "review/policy_versions.py",
    "review/recovery.py",
    "review/assessment.py",
    "review/refund_facts.py",
    "review/refundable.py",
    "review/eligibility.py",
    "review/grading.py",
    "review/calendar.py",
    "payout/domain.py",
    "payout/credits.py",
    "payout/callbacks.py",
    "payout/fx.py",
    "payout/reconcile.py",
    "notify/messages/domain.py",
    "notify/messages/steps.py",
    "notify/webhooks/endpoints.py",
    "notify/webhooks/deliveries.py",
    "../shared/idempotency.py",
    "../shared/money.py",
]


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_domain_modules_import_no_framework(module: str) -> None:
    source = Path(__file__).parents[2] / "services" / module
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FRAMEWORKS, f"{module} imports {imported & FRAMEWORKS}"
