"""Pure rules a review case applies to its own state: what its clock asks for, the record a
decision keeps, and whether an approval waits for the goods to come back.

Kept apart from services/review/domain.py so that the aggregate holds only its commands and
events (and stays small); standard library only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.review.vocabulary import Decision, Due


def clock_due(case: Any, now: datetime) -> Due | None:
    """What a case's clock asks for at `now`: `remind`, `breach`, `evidence_overdue`, or
    nothing (`case` is a ReviewCase)."""
    due_by = case.evidence_due
    if case.state == "awaiting_evidence" and due_by is not None and now >= due_by:
        return "evidence_overdue"
    if case.state != "pending" or case.deadline is None or case.remind_at is None:
        return None
    if now >= case.deadline:
        return "breach"
    if now >= case.remind_at and not case.reminded:
        return "remind"
    return None


def clock_wakes_at(case: Any) -> datetime | None:
    """The earliest moment `clock_due` can ask something of `case` as it stands (None: not
    until another event changes it), so the SLA worker need not reload it before then."""
    if case.state == "awaiting_evidence" and case.evidence_due is not None:
        return case.evidence_due
    if case.state != "pending" or case.deadline is None or case.remind_at is None:
        return None
    if case.reminded:
        return case.deadline
    return min(case.remind_at, case.deadline)


def decision_of(case: Any, rule: str, decided_by: str, at: datetime) -> dict[str, Any]:
    """What every decision of `case` (a ReviewCase) records besides its own terms: the case,
    the policy, who, when."""
    return {
        "refund_id": case.refund_id,
        "tenant": case.tenant,
        "order_id": case.order_id,
        "policy_version": case.policy_version,
        "rule": rule,
        "decided_by": decided_by,
        "decided_at": at,
    }


def decision_record(
    outcome: Decision,
    terms: dict[str, Any],
    rule: str,
    policy_version: str,
    decided_by: str,
    decided_at: datetime,
) -> dict[str, Any]:
    """The decision as the case keeps it: what every decision records, and its own terms."""
    return {
        "outcome": outcome,
        "rule": rule,
        "policy_version": policy_version,
        "decided_by": decided_by,
        "decided_at": decided_at,
        **terms,
    }


def goods_first(assessment: dict[str, Any], decisions: list[dict[str, Any]]) -> bool:
    """Whether an approval waits for the goods: a return was planned when the case opened
    (`return_required` in its assessment), and no earlier approval waited for them already
    (they are back, or never came)."""
    waited = any(d.get("awaiting_return") for d in decisions)
    return bool(assessment.get("return_required")) and not waited
