"""Separation of duties on a review case: who may decide, how many must, and why not.

The review case (services/review/domain.py) asks these before it records a staff
action; every refusal names the rule it broke, so that it can be recorded and shown.
"""

from __future__ import annotations

from typing import Any

from services.review.vocabulary import OPEN_STATES, StaffAction
from shared.money import Money
from shared.vocabulary import TIERS, Tier

APPROVER_ROLES = frozenset({"reviewer", "senior_reviewer", "finance"})
COMPENSATOR_ROLES = frozenset({"senior_reviewer", "finance"})

# Per staff action on a case: the roles that may take it, and the rule and words of a refusal.
ROLE_RULES: dict[StaffAction, tuple[frozenset[str], str, str]] = {
    "approve": (APPROVER_ROLES, "role.approver", "approving needs reviewer, senior or finance"),
    "reject": (APPROVER_ROLES, "role.reviewer", "rejecting needs reviewer, senior or finance"),
    "request_evidence": (
        APPROVER_ROLES,
        "role.reviewer",
        "asking for evidence needs a reviewer role",
    ),
    "escalate": (APPROVER_ROLES, "role.reviewer", "escalating needs a reviewer role"),
    "compensate": (
        COMPENSATOR_ROLES,
        "role.senior",
        "compensation is offered by a senior or finance",
    ),
}


class DutyViolation(Exception):
    """A staff action that separation of duties or roles forbid (answered 403, and recorded)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class CaseStateError(Exception):
    """The action does not fit the case's state (answered 409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def require_open(state: str) -> None:
    if state not in OPEN_STATES:
        raise CaseStateError("closed", f"the case is {state}")


def require_role(action: StaffAction, roles: frozenset[str]) -> None:
    allowed, rule, message = ROLE_RULES[action]
    if not roles & allowed:
        raise DutyViolation(rule, message)


def require_not_excluded(excluded: dict[str, str], person: str, verb: str) -> None:
    """People who raised, escalated or decided the case before may not decide it now."""
    if person in excluded:
        raise DutyViolation(excluded[person], f"{person} may not {verb} this case")


def require_new_approver(approvals: list[dict[str, Any]], person: str) -> None:
    if any(approval["person"] == person for approval in approvals):
        raise DutyViolation("duty.second_approver", "the second approver must be another person")


def require_may(
    case: Any, action: StaffAction, roles: frozenset[str], person: str | None = None
) -> None:
    """A staff action on an open `case` (a ReviewCase) needs the role, and a decision by
    `person` that they are not excluded from deciding it."""
    require_open(case.state)
    require_role(action, roles)
    if person is not None:
        require_not_excluded(case.excluded, person, "decide")


def require_may_approve(
    case: Any,
    person: str,
    roles: frozenset[str],
    amount: Money,
    liability: dict[str, int] | None,
    coupon: Money | None,
) -> None:
    """Everything an approval of `case` (a ReviewCase) by `person` must pass."""
    require_open(case.state)
    require_role("approve", roles)
    require_not_excluded(case.excluded, person, "approve")
    require_new_approver(case.approvals, person)
    exchange = case.assessment.get("desired_outcome") == "exchange"  # may cost nothing
    require_same_terms(case.refundable, case.approvals, amount, liability, coupon, free=exchange)


def require_same_terms(
    refundable: Money,
    approvals: list[dict[str, Any]],
    amount: Money,
    liability: dict[str, int] | None,
    coupon: Money | None,
    *,
    free: bool = False,
) -> None:
    """An approval pays within the refundable amount (nothing at all only when `free`: an
    exchange at the same price), and a later approver confirms the first approver's terms
    (amount and coupon) rather than approving other ones."""
    first = approvals[0] if approvals else None
    least = 0 if free else 1
    if not least <= amount.amount <= refundable.amount or amount.currency != refundable.currency:
        raise CaseStateError(
            "amount_out_of_range", f"approve between {least} and {refundable.format()}"
        )
    if liability is not None and sum(liability.values()) != amount.amount:
        raise CaseStateError("liability_split", "liability shares must sum to the amount")
    if coupon is not None and (coupon.amount <= 0 or coupon.currency != amount.currency):
        raise CaseStateError("coupon", f"a coupon is a positive amount in {amount.currency}")
    if first and (first["amount"] != amount or first.get("coupon") != coupon):
        raise CaseStateError(
            "terms_differ",
            f"the first approval was for {first['amount'].format()}"
            + (f" and a {first['coupon'].format()} coupon" if first.get("coupon") else "")
            + "; confirm those terms, or reject or escalate",
        )


def still_needed(needs: dict[str, Any], approvals: list[dict[str, Any]]) -> dict[str, Any]:
    """What a case still waits for, as data (the console words it in each language): how many
    more approvals, and whether one must come from a senior_reviewer or from finance."""
    held = {role for approval in approvals for role in approval["roles"]}
    return {
        "approvals": max(int(needs["count"]) - len(approvals), 0),
        "senior_reviewer": bool(needs.get("senior")) and "senior_reviewer" not in held,
        "finance": bool(needs.get("finance")) and "finance" not in held,
    }


def missing_approvals(needs: dict[str, Any], approvals: list[dict[str, Any]]) -> list[str]:
    """What a case still waits for, in words a reviewer understands (nothing: approved)."""
    needed = still_needed(needs, approvals)
    missing = []
    if needed["approvals"] > 0:
        missing.append(f"{needed['approvals']} more approval(s)")
    if needed["senior_reviewer"]:
        missing.append("a senior_reviewer")
    if needed["finance"]:
        missing.append("finance")
    return missing


def one_tier_up(tier: str, needs: dict[str, Any]) -> tuple[Tier, dict[str, Any]]:
    """An escalated case: the next tier (major stays major), decided by at least two
    people, one of them a senior_reviewer once it is major."""
    higher = TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]
    escalated = {**needs, "count": max(int(needs["count"]), 2)}
    if higher == "major":
        escalated["senior"] = True
    return higher, escalated
