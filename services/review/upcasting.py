"""Review: the shapes earlier builds stored, and how each is read today.

Every shape is from the history report of issue 15 (§3), by the commit that stored it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from services.review.calendar import WorkingCalendar
from services.review.domain import ReviewCase
from services.review.policy_document import Policy, default_policy
from shared.upcasting import set_upcasters

# The assessment a case opened by the foundation's placeholder policy (058f5d7) stands for:
# it approved up to a limit and rejected above it at once, and the case's Approved or
# Rejected event, stored with the Opened, records which and by what rule. "approve" keeps
# the opening unpublished (only a manual opening is news), as it was.
PLACEHOLDER_ASSESSMENT: dict[str, Any] = {
    "outcome": "approve",
    "rule": "auto_approve.limit",
    "policy_version": "placeholder-1",
    "tier": "general",
    "approvals": {"count": 1, "senior": False, "finance": False},
    "explanation": {},
    "risk_score": 0,
    "risk_signals": {},
    "checks": [],
}


def _opened(state: dict[str, Any]) -> None:
    """058f5d7 stored `amount` and no assessment; 3610415 added `raised_by`, abd7490 `evidence`."""
    if "amount" in state:  # the first shape: the policy's limit decided at once
        amount = state.pop("amount")
        state.setdefault("requested", amount)
        state.setdefault("refundable", amount)  # nothing was deducted before refundability
        state.setdefault(
            "assessment", {**PLACEHOLDER_ASSESSMENT, "refundable": amount, "amount": amount}
        )
        state.setdefault("customer_id", "")  # not recorded; customer history starts later
        state.setdefault("opened_at", state["timestamp"])  # opened when the event was
    state.setdefault("raised_by", None)  # raised by the platform: nobody is excluded
    state.setdefault("evidence", [])  # evidence reached review only later


def _approval_added(state: dict[str, Any]) -> None:
    """922aa45 stored no `note` (d68a172) and no `coupon` (abd7490)."""
    state.setdefault("note", "")
    state.setdefault("coupon", None)


def _approved(state: dict[str, Any]) -> None:
    """058f5d7 stored no `approvers` or `liability` (e8faf0a), nor `coupon` (abd7490)."""
    decided_by = str(state["decided_by"])
    # Decided by rule: nobody approved. By a person (922aa45): at least that person did.
    state.setdefault("approvers", [] if decided_by.startswith("system:") else [decided_by])
    state.setdefault("liability", None)
    state.setdefault("coupon", None)


def _approved_before_returns(state: dict[str, Any]) -> None:
    """Before returns (issue 16) every approval paid at once: none waited for the goods."""
    state.setdefault("awaiting_return", False)


def _rejected(state: dict[str, Any]) -> None:
    """058f5d7 stored no `reason_code` (e8faf0a): today a rule's rejection records the rule,
    a person's cites `manual.<reason_code>`."""
    state.setdefault("reason_code", str(state["rule"]).removeprefix("manual."))


def _rejected_before_notes(state: dict[str, Any]) -> None:
    """Before the console (issue 17) a rejection took no internal note for staff."""
    state.setdefault("internal_note", "")


def _evidence_received(state: dict[str, Any]) -> None:
    """922aa45 stored a `count` and no records (abd7490); 23f1920 added `answered` and the
    case's route."""
    if "count" in state:
        del state["count"]
        state.setdefault("records", [])  # the first shape kept no records
    # Not `answered`, even if the case was waiting: a relay publishing again (after a broker
    # lost its data) must not publish an evidence_received.v1 that was never published, from
    # an event without the route the publisher needs.
    state.setdefault("answered", False)
    for key in ("refund_id", "tenant", "order_id"):
        state.setdefault(key, None)


@cache
def _shipped() -> tuple[Policy, WorkingCalendar]:
    policy = default_policy()
    return policy, policy.working_calendar()


def _evidence_requested(state: dict[str, Any]) -> None:
    """922aa45 stored neither `remaining_seconds` (e8faf0a) nor `evidence_due` (3610415).

    Both are what the shipped policy gives a request made at `at`: the review clock
    resumes with one whole review stage when the evidence arrives (0 would breach it at
    once), and the customer has the evidence stage to answer before the case returns
    to the reviewer (None, "never overdue", would leave such a case waiting for ever).
    """
    at: datetime = state["at"]
    policy, calendar = _shipped()
    if "remaining_seconds" not in state:
        stage_end = calendar.add_business_days(at, policy.sla.review_business_days)
        stage: timedelta = calendar.business_time_between(at, stage_end)
        state["remaining_seconds"] = int(stage.total_seconds())
    if "evidence_due" not in state:
        state["evidence_due"] = calendar.add_business_days(at, policy.sla.evidence_business_days)


# Stored as version 2 from now on. Every event stored so far has no version (1), whether
# a development build or 0.1.0 wrote it: each upcaster recognises the older shape by its
# keys and leaves 0.1.0's as it is (tests/e2e/test_frozen_stores.py loads 0.1.0's).
set_upcasters(ReviewCase, "Opened", _opened)
set_upcasters(ReviewCase, "ApprovalAdded", _approval_added)
set_upcasters(ReviewCase, "Approved", _approved, _approved_before_returns)
set_upcasters(ReviewCase, "Rejected", _rejected, _rejected_before_notes)
set_upcasters(ReviewCase, "EvidenceReceived", _evidence_received)
set_upcasters(ReviewCase, "EvidenceRequested", _evidence_requested)
