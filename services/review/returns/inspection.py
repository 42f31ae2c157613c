"""What a warehouse's receipt means for the refund: each item's deduction by the policy, the
units not sent back, and the outcome (refund, exchange or a reviewer).

Pure: the items as the return recorded them, the receipt, the request's reason and desired
outcome, and the policy version the refund was decided under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from services.review.assessment import explain
from services.review.policy_document import Policy
from services.review.return_rules import InspectedItem, deduction
from services.review.returns.allocation import unreturned_share
from services.review.returns.vocabulary import RECEIVED_AS_EXPECTED
from services.review.vocabulary import NO_DEDUCTION_RULE
from shared.money import Money


@dataclass(frozen=True)
class Inspection:
    """The receipt's lines as the return records them, and what the refund pays."""

    lines: list[dict[str, Any]]
    outcome: Literal["refund", "exchange", "reviewer"]
    amount: Money  # what to pay now (0 while a reviewer decides)
    deducted: Money
    rule: str


def inspect(
    items: list[dict[str, Any]],
    receipt: list[dict[str, Any]],
    *,
    approved: Money,
    reason: str,
    desired_outcome: str,
    policy: Policy,
) -> Inspection:
    """Each approved item against what arrived; units not received are not paid."""
    by_sku = {line["sku"]: line for line in receipt}
    zero = Money(0, approved.currency)
    lines: list[dict[str, Any]] = []
    deducted, unreturned = zero, zero
    reviewer_rule: str | None = None
    first_deduction: str | None = None
    whole_and_as_expected = True
    for item in items:
        expected, price = int(item["quantity"]), item["price"]
        line = by_sku.get(item["sku"], {})
        received = int(line.get("quantity", 0))
        missing = unreturned_share(price, expected, received)
        unreturned += missing
        line_record: dict[str, Any] = {
            "sku": item["sku"],
            "expected": expected,
            "received": received,
            "condition": line.get("condition") if received else None,
            "heavy_damage": bool(line.get("heavy_damage", False)) if received else False,
            "photos": list(line.get("photos", [])) if received else [],
            "deducted": zero,
            "rule": None,
            "explanation": {},
        }
        whole_and_as_expected &= received == expected
        if received:
            found = deduction(
                InspectedItem(
                    sku=item["sku"],
                    category=item["category"],
                    quantity=received,
                    unit_price=Money(price.amount // expected, price.currency),
                    price=price - missing,
                    condition=line["condition"],
                    heavy_damage=bool(line.get("heavy_damage", False)),
                ),
                reason,
                policy,
            )
            line_record |= {
                "deducted": found.amount,
                "rule": found.rule,
                "explanation": found.explanation,
            }
            deducted += found.amount
            whole_and_as_expected &= line["condition"] == "as_expected" and found.amount == zero
            if found.outcome == "reviewer" and reviewer_rule is None:
                reviewer_rule = found.rule
            elif found.rule is not None and first_deduction is None and found.amount != zero:
                first_deduction = found.rule
        lines.append(line_record)
    if reviewer_rule is None and desired_outcome == "exchange" and not whole_and_as_expected:
        # A replacement for goods that came back short or damaged is a person's call.
        reviewer_rule = NO_DEDUCTION_RULE
        _explain_first_deviation(lines, policy)
    if reviewer_rule is not None:
        return Inspection(lines, "reviewer", zero, deducted, reviewer_rule)
    if desired_outcome == "exchange":
        return Inspection(lines, "exchange", approved, zero, RECEIVED_AS_EXPECTED)
    pays = approved - deducted - unreturned
    if pays.amount <= 0:  # nothing left to pay: a person closes it, not a payout of nothing
        return Inspection(lines, "reviewer", zero, deducted, first_deduction or NO_DEDUCTION_RULE)
    return Inspection(lines, "refund", pays, deducted, first_deduction or RECEIVED_AS_EXPECTED)


def _explain_first_deviation(lines: list[dict[str, Any]], policy: Policy) -> None:
    for line in lines:
        if line["received"] != line["expected"] or line["condition"] != "as_expected":
            line["rule"] = line["rule"] or NO_DEDUCTION_RULE
            condition = line["condition"] or "not_received"
            line["explanation"] = line["explanation"] or explain(
                policy, NO_DEDUCTION_RULE, {"condition": condition, "sku": line["sku"]}
            )
            return
