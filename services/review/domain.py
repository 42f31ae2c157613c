"""A review case: one refund's path from the policy's assessment to a decision by rule or people.

The case enforces separation of duties on every staff action (the rules are in
services/review/duties.py): who may approve, how many must, and that no one approves
twice, approves what they escalated, or re-decides their own decision on appeal.
Every refusal names the rule it broke.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.review import duties
from services.review.case_rules import clock_due, decision_of, decision_record, goods_first
from services.review.duties import CaseStateError
from services.review.vocabulary import APPEAL, OPEN_STATES, CaseState, Due
from shared.ids import derived_id
from shared.money import Money
from shared.quick_copy import QuickCopy


class ReviewCase(QuickCopy, Aggregate):
    """The review of one refund request, from assessment to decision."""

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        return derived_id("review-case", refund_id)

    @event("Opened")
    def __init__(
        self,
        *,
        refund_id: str,
        tenant: str,
        order_id: str,
        customer_id: str,
        requested: Money,
        refundable: Money,
        payment: dict[str, Any],
        reason: str,
        assessment: dict[str, Any],
        opened_at: datetime,
        causation_id: str,
        raised_by: str | None,
        evidence: list[dict[str, Any]],
    ) -> None:
        self.refund_id = refund_id
        self.tenant = tenant
        self.order_id = order_id
        self.customer_id = customer_id
        self.requested = requested
        self.refundable = refundable
        self.payment = payment
        self.reason = reason
        self.assessment = assessment
        self.opened_at = opened_at
        self.evidence = evidence  # what the customer sent with the request, and later
        self.policy_version = str(assessment["policy_version"])
        self.tier = str(assessment["tier"])
        self.needs: dict[str, Any] = dict(assessment["approvals"])
        self.state: CaseState = "pending"
        self.round = 1
        self.assignee: str | None = None
        self.approvals: list[dict[str, Any]] = []
        self.excluded: dict[str, str] = {}  # person → why they may not approve
        if raised_by:
            self.excluded[raised_by] = "duty.raised_on_behalf"
        self.decision: dict[str, Any] | None = None
        self.decisions: list[dict[str, Any]] = []
        self.evidence_requests: list[dict[str, Any]] = []
        self.compensation: dict[str, Any] | None = None
        self.deadline: datetime | None = None
        self.remind_at: datetime | None = None
        self.reminded = False
        self.breaches = 0
        self.paused_remaining: int | None = None  # business seconds left when the clock paused
        self.evidence_due: datetime | None = None  # by when the customer should answer
        self.history: list[dict[str, Any]] = []
        self._log("opened", opened_at, "system:policy", rule=assessment["rule"])

    def _log(self, action: str, at: datetime, actor: str, **facts: Any) -> None:
        self.history.append({"action": action, "at": at, "actor": actor, **facts})

    def _route(self) -> dict[str, Any]:
        # Published events carry the case's identity, so each maps on its own.
        return {"refund_id": self.refund_id, "tenant": self.tenant, "order_id": self.order_id}

    # -- decisions by rule ---------------------------------------------------------------------

    def decide_by_rule(self, at: datetime) -> None:
        """Apply the policy's automatic outcome, if it had one."""
        outcome = self.assessment["outcome"]
        rule = str(self.assessment["rule"])
        decision = decision_of(self, rule, f"system:{rule}", at)
        if outcome == "approve":
            self._approved(
                **decision,
                amount=self.assessment["amount"],
                payment=self.payment,
                approvers=[],
                liability=None,
                awaiting_return=goods_first(self.assessment, self.decisions),
            )
        elif outcome == "reject":
            explanation = dict(self.assessment["explanation"])
            self._rejected(**decision, reason_code=rule, explanation=explanation)

    # -- staff actions ------------------------------------------------------------------------

    def claim(self, person: str, at: datetime) -> None:
        duties.require_open(self.state)
        if self.assignee not in (None, person):
            raise CaseStateError("claimed", f"the case is claimed by {self.assignee}")
        if self.assignee != person:
            self._claimed(person, at)

    @event("Claimed")
    def _claimed(self, person: str, at: datetime) -> None:
        self.assignee = person
        self._log("claimed", at, person)

    def release(self, person: str, at: datetime) -> None:
        if self.assignee != person:
            raise CaseStateError("not_claimed", "only the person who claimed a case releases it")
        self._released(person, at)

    @event("Released")
    def _released(self, person: str, at: datetime) -> None:
        self.assignee = None
        self._log("released", at, person)

    def approve(
        self,
        *,
        person: str,
        roles: frozenset[str],
        amount: Money,
        liability: dict[str, int] | None,
        at: datetime,
        note: str = "",
        coupon: Money | None = None,
    ) -> None:
        """Add one approval (with the approver's note, if any); the case is approved once the
        tier's approvals are complete. A `coupon` is compensation on top of the refund."""
        duties.require_may_approve(self, person, roles, amount, liability, coupon)
        self._approval_added(person, sorted(roles), amount, liability, at, note, coupon)
        if not self.missing_approvals():
            self._approved(
                **decision_of(self, f"manual.{self.tier}", person, at),
                amount=amount,
                payment=self.payment,
                approvers=[a["person"] for a in self.approvals],
                liability=self.approvals[0]["liability"],
                coupon=coupon,
                awaiting_return=goods_first(self.assessment, self.decisions),
            )

    @event("ApprovalAdded")
    def _approval_added(
        self,
        person: str,
        roles: list[str],
        amount: Money,
        liability: dict[str, int] | None,
        at: datetime,
        note: str = "",  # approvals recorded before notes existed have none
        coupon: Money | None = None,
    ) -> None:
        self.approvals.append(
            {
                "person": person,
                "roles": roles,
                "amount": amount,
                "liability": liability,
                "at": at,
                "note": note,
                "coupon": coupon,
            }
        )
        self._log("approval_added", at, person, amount=amount, note=note)

    def missing_approvals(self) -> list[str]:
        """What the case still waits for, in words a reviewer understands."""
        return duties.missing_approvals(self.needs, self.approvals)

    def reject(
        self,
        *,
        person: str,
        roles: frozenset[str],
        reason_code: str,
        explanation: dict[str, str],
        at: datetime,
        internal_note: str = "",
    ) -> None:
        """`internal_note` is for staff only: kept on the case, never published or sent."""
        duties.require_may(self, "reject", roles, person)
        decision = decision_of(self, f"manual.{reason_code}", person, at)
        self._rejected(
            **decision,
            reason_code=reason_code,
            explanation=explanation,
            internal_note=internal_note,
        )

    def request_evidence(
        self,
        *,
        person: str,
        roles: frozenset[str],
        missing: list[str],
        message: str,
        remaining_seconds: int,
        evidence_due: datetime,
        at: datetime,
    ) -> None:
        """Ask the customer for more by `evidence_due`; the review clock stops meanwhile,
        with `remaining_seconds` left."""
        duties.require_may(self, "request_evidence", roles)
        if self.state == "awaiting_evidence":
            raise CaseStateError("already_requested", "evidence was already requested")
        self._evidence_requested(
            **self._route(),
            missing=missing,
            message=message,
            by=person,
            remaining_seconds=remaining_seconds,
            evidence_due=evidence_due,
            at=at,
        )

    @event("EvidenceRequested")
    def _evidence_requested(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        missing: list[str],
        message: str,
        by: str,
        remaining_seconds: int,
        evidence_due: datetime,
        at: datetime,
    ) -> None:
        self.state = "awaiting_evidence"
        self.evidence_due = evidence_due
        self.deadline = None  # the review clock pauses while the customer gathers evidence
        self.paused_remaining = remaining_seconds
        self.evidence_requests.append({"missing": missing, "message": message, "by": by, "at": at})
        self._log("evidence_requested", at, by, missing=missing)

    def receive_evidence(self, records: list[dict[str, Any]], at: datetime) -> None:
        """Keep what the customer sent; if review was waiting for it, the case resumes
        (`answered`: published, so that the customer hears their refund is in review again)."""
        answered = self.state == "awaiting_evidence"
        self._evidence_received(records, at, answered=answered, **self._route())

    @event("EvidenceReceived")
    def _evidence_received(
        self,
        records: list[dict[str, Any]],
        at: datetime,
        answered: bool = False,  # events stored before these fields lack them
        refund_id: str | None = None,
        tenant: str | None = None,
        order_id: str | None = None,
    ) -> None:
        self.evidence = [*self.evidence, *records]
        if self.state == "awaiting_evidence":
            self.state = "pending"
            self.evidence_due = None
        self._log("evidence_received", at, "customer", count=len(records))

    def escalate(self, *, person: str, roles: frozenset[str], why: str, at: datetime) -> None:
        duties.require_may(self, "escalate", roles)
        self._escalate(person, why, at)

    def _escalate(self, by: str, why: str, at: datetime) -> None:
        tier, needs = duties.one_tier_up(self.tier, self.needs)
        self._escalated(**self._route(), tier=tier, needs=needs, by=by, why=why, at=at)

    @event("Escalated")
    def _escalated(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        tier: str,
        needs: dict[str, Any],
        by: str,
        why: str,
        at: datetime,
    ) -> None:
        self.tier = tier
        self.needs = needs
        self.approvals = []  # a higher tier decides afresh
        if not by.startswith("system:"):
            self.excluded[by] = "duty.escalated_own_case"
        self._log("escalated", at, by, tier=tier, why=why)

    def withdraw(self, at: datetime) -> None:
        if self.state in OPEN_STATES:
            self._withdrawn(at)

    @event("Withdrawn")
    def _withdrawn(self, at: datetime) -> None:
        self.state = "withdrawn"
        self._log("withdrawn", at, "customer")

    def reopen_on_appeal(self, *, statement: str, at: datetime) -> None:
        """An appeal goes one tier up and to someone other than the original decider."""
        if self.state != "rejected" or self.decision is None:
            return
        self._appealed(statement, str(self.decision["decided_by"]), at)
        self._escalate("system:appeal", APPEAL, at)

    @event("Appealed")
    def _appealed(self, statement: str, decider: str, at: datetime) -> None:
        self.state = "pending"
        self.round += 1
        self.decision = None
        self.approvals = []
        if not decider.startswith("system:"):
            self.excluded[decider] = "duty.appeal_needs_another_decider"
        self._log("appealed", at, "customer", statement=statement)

    def offer_compensation(
        self, *, person: str, roles: frozenset[str], coupon: Money, note: str, at: datetime
    ) -> None:
        """A coupon instead of cash (e.g. a negotiated settlement of a non-refundable case)."""
        duties.require_may(self, "compensate", roles, person)
        self._compensation_offered(**self._route(), coupon=coupon, note=note, by=person, at=at)

    @event("CompensationOffered")
    def _compensation_offered(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        coupon: Money,
        note: str,
        by: str,
        at: datetime,
    ) -> None:
        self.state = "compensated"
        self.compensation = {"coupon": coupon, "note": note, "by": by, "at": at}
        self._log("compensation_offered", at, by, coupon=coupon)

    def record_refusal(self, *, person: str, action: str, rule: str, at: datetime) -> None:
        """Keep a refused staff action on record (separation of duties is audited too)."""
        self._refused(person, action, rule, at)

    @event("ActionRefused")
    def _refused(self, person: str, action: str, rule: str, at: datetime) -> None:
        self._log("refused", at, person, attempted=action, rule=rule)

    # -- service-level clock --------------------------------------------------------------------

    def schedule(self, *, deadline: datetime, remind_at: datetime, at: datetime) -> None:
        """Start (or restart, after evidence arrived or an escalation) the stage's clock."""
        if self.state == "pending":
            self._scheduled(deadline, remind_at, at)

    @event("SlaScheduled")
    def _scheduled(self, deadline: datetime, remind_at: datetime, at: datetime) -> None:
        self.paused_remaining = None
        self.deadline = deadline
        self.remind_at = remind_at
        self.reminded = False

    def due(self, now: datetime) -> Due | None:
        """What the clock asks for now: `remind`, `breach`, `evidence_overdue`, or nothing."""
        return clock_due(self, now)

    def give_up_waiting(self, now: datetime) -> None:
        """The customer did not answer in time: the case goes back to the reviewer."""
        if self.due(now) == "evidence_overdue":
            self._evidence_overdue(now)

    @event("EvidenceOverdue")
    def _evidence_overdue(self, at: datetime) -> None:
        self.state = "pending"
        self.evidence_due = None
        self._log("evidence_overdue", at, "system:sla")

    def remind(self, now: datetime) -> None:
        if self.due(now) == "remind":
            self._reminded(**self._route(), deadline=self.deadline, at=now)

    @event("Reminded")
    def _reminded(
        self, refund_id: str, tenant: str, order_id: str, deadline: datetime | None, at: datetime
    ) -> None:
        self.reminded = True
        self._log("reminded", at, "system:sla")

    def breach(self, now: datetime) -> None:
        """The deadline passed: record the breach and escalate one tier."""
        if self.due(now) == "breach":
            self._breached(**self._route(), deadline=self.deadline, tier=self.tier, at=now)
            self._escalate("system:sla", "deadline passed", now)

    @event("SlaBreached")
    def _breached(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        deadline: datetime | None,
        tier: str,
        at: datetime,
    ) -> None:
        self.breaches += 1
        self.deadline = None  # the escalation schedules the next stage
        self._log("sla_breached", at, "system:sla", tier=tier)

    # -- goods back before money back (services/review/returns/) -------------------------------

    def pay_after_return(self, *, amount: Money, rule: str, at: datetime) -> None:
        """The return's `rule` lets the money move: pay `amount`, at most what was approved."""
        approval = self.decision or {}
        if self.state == "approved" and approval.get("awaiting_return"):
            self._approved(
                **decision_of(self, rule, f"system:{rule}", at),
                amount=min(amount, approval["amount"]),
                payment=self.payment,
                approvers=list(approval["approvers"]),
                liability=None,
            )

    def reopen_after_return(self, *, rule: str, at: datetime) -> None:
        """The inspection contradicts the claim (`rule`): a person decides, as on appeal."""
        if self.state == "approved" and (self.decision or {}).get("awaiting_return"):
            self._inspection_contested(rule, at)

    @event("InspectionContested")
    def _inspection_contested(self, rule: str, at: datetime) -> None:
        self.refundable = (self.decision or {}).get("amount", self.refundable)  # the most now
        self.state = "pending"
        self.round += 1
        self.decision = None
        self.approvals = []
        self._log("inspection_contested", at, "system:return", rule=rule)

    # -- decisions ------------------------------------------------------------------------------

    @event("Approved")
    def _approved(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        amount: Money,
        payment: dict[str, Any],
        policy_version: str,
        rule: str,
        decided_by: str,
        approvers: list[str],
        liability: dict[str, int] | None,
        decided_at: datetime,
        coupon: Money | None = None,
        awaiting_return: bool = False,  # approved, but the money waits for the goods
    ) -> None:
        terms: dict[str, Any] = {"amount": amount, "coupon": coupon, "approvers": approvers}
        terms |= {"liability": liability, "awaiting_return": awaiting_return}
        self._decided(
            decision_record("approved", terms, rule, policy_version, decided_by, decided_at)
        )

    @event("Rejected")
    def _rejected(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        policy_version: str,
        rule: str,
        reason_code: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
        internal_note: str = "",  # a rule's rejection has none
    ) -> None:
        terms = {"reason_code": reason_code, "explanation": explanation}
        terms["internal_note"] = internal_note  # staff only, never published
        self._decided(
            decision_record("rejected", terms, rule, policy_version, decided_by, decided_at)
        )

    def _decided(self, record: dict[str, Any]) -> None:
        """Keep a decision (case_rules.decision_record): the case's state, record and history."""
        outcome, at, by = record["outcome"], record["decided_at"], record["decided_by"]
        self.state, self.decision = outcome, record
        self.decisions.append(record)
        self._log(outcome, at, by, rule=record["rule"])
