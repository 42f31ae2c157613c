"""Intake's rules: a refund request as the platform submitted it, and its customer-facing life.

The public status is derived from facts, never stored as a separate field: facts
from review and payout travel on different topics and may arrive in any order,
and deriving the status from all of them gives the same answer whatever the order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from eventsourcing.domain import Aggregate, event

from services.intake.lifecycle import LifecycleError
from services.intake.orders import FieldProblem, FieldProblems
from services.intake.returns import RETURN_WITHDRAWABLE, ReturnStatus, ReturnSteps, return_status
from shared.money import Money
from shared.quick_copy import QuickCopy

# The statuses a platform sees, each derived from the facts recorded (_derive_status).
Status = Literal[
    "submitted",
    "in_review",
    "awaiting_evidence",
    "approved",
    "rejected",
    "withdrawn",
    "paying",
    "paid",
    "payout_failed",
    "closed",
    ReturnStatus,  # the goods go back first (services/intake/returns.py)
]
OPEN: frozenset[Status] = frozenset({"submitted", "in_review", "awaiting_evidence"})  # undecided
WITHDRAWABLE: frozenset[Status] = frozenset({*OPEN, "approved", *RETURN_WITHDRAWABLE})
PAYOUT_STARTED: frozenset[Status] = frozenset({"paying", "paid", "payout_failed", "closed"})
DecisionOutcome = Literal["approved", "rejected"]  # review's decisions (a coupon is no decision)
PayoutOutcome = Literal["paid", "failed"]
MAX_EVIDENCE = 50


class StatusFacts(Protocol):
    """The facts a refund's status is derived from: the aggregate's, or a read model's
    lighter copy of them (services/intake/index_rows.py), so both derive it alike."""

    receipt: dict[str, Any] | None
    payout: dict[str, Any] | None
    withdrawal: dict[str, Any] | None
    compensation: dict[str, Any] | None
    decision: dict[str, Any] | None
    goods_return: dict[str, dict[str, Any]]
    evidence_request: dict[str, Any] | None
    appeals: list[dict[str, Any]]
    review: dict[str, Any] | None


def derive_status(facts: StatusFacts) -> Status:
    """The public status the recorded facts give, whatever order they arrived in."""
    if facts.receipt is not None:
        return "closed"
    if facts.payout is not None:
        paid: PayoutOutcome = facts.payout["status"]
        return "payout_failed" if paid == "failed" else paid
    if facts.withdrawal is not None:
        return "withdrawn"
    if facts.compensation is not None:
        return "closed"
    if facts.decision is not None:
        outcome: DecisionOutcome = facts.decision["outcome"]
        return outcome
    returning = return_status(facts.goods_return)
    if returning is not None:
        return returning
    if facts.evidence_request is not None:
        return "awaiting_evidence"
    return "in_review" if facts.appeals or facts.review else "submitted"


class RefundRequest(QuickCopy, ReturnSteps, Aggregate):
    """One request for money back on one order, from any channel."""

    # The return's events, whose rules are in returns.py, declared on the refund once more:
    # eventsourcing defines an aggregate's events from its own class body only, and so they
    # are RefundRequest's events, with its topics, like every other fact of the refund.
    _return_requested = vars(ReturnSteps)["_return_requested"]
    _ship_by_reminded = vars(ReturnSteps)["_ship_by_reminded"]
    _return_shipped = vars(ReturnSteps)["_return_shipped"]
    _return_delivered = vars(ReturnSteps)["_return_delivered"]
    _return_received = vars(ReturnSteps)["_return_received"]
    _deadline_missed = vars(ReturnSteps)["_deadline_missed"]
    _exchange_ready = vars(ReturnSteps)["_exchange_ready"]

    @event("Requested")
    def __init__(
        self,
        *,
        tenant: str,
        order: dict[str, Any],
        amount: Money,
        items: list[dict[str, Any]],
        items_named: bool,
        reason: str,
        desired_outcome: str,
        description: str,
        evidence: list[dict[str, Any]],
        customer: dict[str, Any],
        channel: str,
        metadata: dict[str, str],
        actor: str,
        raised_by: str | None,
    ) -> None:
        self.tenant = tenant
        self.raised_by = raised_by  # a staff member who entered it for the customer
        self.order = order
        self.amount = amount
        self.items = items
        self.items_named = items_named  # the request named items (they are reserved)
        self.reason = reason
        self.desired_outcome = desired_outcome
        self.description = description
        self.evidence = evidence
        self.customer = customer
        self.channel = channel
        self.metadata = metadata
        self.decision: dict[str, Any] | None = None
        self.decisions: list[dict[str, Any]] = []
        self.appeals: list[dict[str, Any]] = []
        self.payout: dict[str, Any] | None = None
        self.withdrawal: dict[str, Any] | None = None
        self.receipt: dict[str, Any] | None = None
        self.review: dict[str, Any] | None = None  # a person reviews it (tier, deadline)
        self.evidence_request: dict[str, Any] | None = None  # what review still waits for
        self.compensation: dict[str, Any] | None = None
        self.upstream: list[str] = []  # ids of upstream events already recorded
        self.sla_breached_at: datetime | None = None  # review's clock ran out (review decides)
        self.goods_return: dict[str, dict[str, Any]] = {}  # the return's steps (returns.py)
        self.timeline: list[dict[str, Any]] = []
        self.status: Status = "submitted"
        self._note("submitted", self.created_on, actor)

    # -- what the refund is ---------------------------------------------------------------------

    @property
    def order_id(self) -> str:
        return str(self.order["id"])

    @property
    def customer_id(self) -> str:
        return str(self.order["customer_id"])

    @property
    def paid(self) -> Money:
        return Money(self.order["paid"]["amount"], self.order["paid"]["currency"])

    @property
    def reserved_items(self) -> dict[str, int]:
        """Items this refund holds on its order (only those the request named)."""
        if not self.items_named:
            return {}
        return {item["sku"]: item["quantity"] for item in self.items}

    def _derive_status(self) -> Status:
        return derive_status(self)

    def _note(self, step: str, at: datetime, actor: str, **facts: Any) -> None:
        self.status = self._derive_status()
        self.timeline.append(
            {"step": step, "status": self.status, "at": at, "actor": actor, **facts}
        )

    # -- commands from the platform -------------------------------------------------------------

    def withdraw(self, *, reason: str, actor: str, at: datetime) -> None:
        if self.status not in WITHDRAWABLE or self.goods_back:
            why = _why_not_withdrawable(self.status, self.goods_back)
            raise LifecycleError("not_withdrawable", why)
        self._withdrawn(reason, actor, at, self.tenant, self.order_id)

    # Published events carry the tenant and order, so that the relay maps them alone.
    @event("Withdrawn")
    def _withdrawn(self, reason: str, actor: str, at: datetime, tenant: str, order_id: str) -> None:
        self.withdrawal = {"reason": reason, "actor": actor, "at": at}
        self._note("withdrawn", at, actor, reason=reason)

    def add_evidence(
        self, *, evidence: list[dict[str, Any]], note: str, actor: str, at: datetime
    ) -> None:
        if self.status not in OPEN:
            raise LifecycleError(
                "evidence_closed",
                f"evidence is accepted until a decision; this refund is {self.status}",
            )
        skus = {item["sku"] for item in self.order["items"]}
        unknown = [
            FieldProblem(f"evidence.{i}.sku", "not_in_order", f"{e['sku']} is not in the order")
            for i, e in enumerate(evidence)
            if e.get("sku") is not None and e["sku"] not in skus
        ]
        if unknown:
            raise FieldProblems(unknown)
        if len(self.evidence) + len(evidence) > MAX_EVIDENCE:
            raise LifecycleError(
                "evidence_limit", f"a refund holds at most {MAX_EVIDENCE} evidence records"
            )
        self._evidence_added(evidence, note, actor, at, self.tenant, self.order_id)

    @event("EvidenceAdded")
    def _evidence_added(
        self,
        evidence: list[dict[str, Any]],
        note: str,
        actor: str,
        at: datetime,
        tenant: str,
        order_id: str,
    ) -> None:
        self.evidence = [*self.evidence, *evidence]
        self.evidence_request = None
        self._note("evidence_added", at, actor, count=len(evidence))

    def appeal(self, *, statement: str, actor: str, at: datetime) -> None:
        if self.status != "rejected" or self.decision is None:
            raise LifecycleError(
                "not_appealable",
                f"only a rejected refund can be appealed; this one is {self.status}",
            )
        appealed = {"rule": self.decision["rule"], "decided_at": self.decision["decided_at"]}
        self._appealed(statement, actor, at, appealed, self.amount, self.tenant, self.order_id)

    @event("Appealed")
    def _appealed(
        self,
        statement: str,
        actor: str,
        at: datetime,
        appealed: dict[str, Any],
        amount: Money,
        tenant: str,
        order_id: str,
    ) -> None:
        self.appeals.append({"statement": statement, "actor": actor, "at": at, "of": appealed})
        self.decision = None  # a new round of review; the rejection stays in `decisions`
        self._note("appealed", at, actor)

    def confirm_receipt(self, *, actor: str, at: datetime) -> None:
        if self.status != "paid":
            raise LifecycleError(
                "not_paid", f"receipt can be confirmed once the refund is paid; it is {self.status}"
            )
        self._receipt_confirmed(actor, at, self.tenant, self.order_id)

    @event("ReceiptConfirmed")
    def _receipt_confirmed(self, actor: str, at: datetime, tenant: str, order_id: str) -> None:
        self.receipt = {"actor": actor, "at": at}
        self._note("receipt_confirmed", at, actor)

    # -- facts learned from review and payout --------------------------------------------------
    # Each fact is recorded once (by the id of the upstream event that carried it), and only
    # while it can still matter: a decision while none stands, a payout until one succeeded.
    # The keywords are the integration events' own field names (shared.contracts).

    def knows(self, upstream_event_id: str) -> bool:
        return upstream_event_id in self.upstream

    def _new(self, causation_id: str, *, unless: bool = False) -> bool:
        return not unless and not self.knows(causation_id)

    def _learned(
        self, causation_id: str, step: str, at: datetime, actor: str, source: str, **facts: Any
    ) -> None:
        self.upstream.append(causation_id)
        self._note(step, at, actor, **facts, source=source)

    def _decided(self, decision: dict[str, Any], causation_id: str) -> None:
        """Review decided this round: an approval or a rejection."""
        self.decision = decision
        self.decisions.append(decision)
        rule = decision["rule"]
        outcome, at, by = decision["outcome"], decision["decided_at"], decision["decided_by"]
        self._learned(causation_id, outcome, at, by, "review", rule=rule)

    def record_approval(
        self,
        *,
        amount: Money,
        policy_version: str,
        rule: str,
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id, unless=self.decision is not None):
            self._approved(amount, policy_version, rule, decided_by, decided_at, causation_id)

    @event("Approved")
    def _approved(
        self,
        amount: Money,
        policy_version: str,
        rule: str,
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        approval = {"outcome": "approved", "amount": amount, "policy_version": policy_version}
        self._decided(
            {**approval, "rule": rule, "decided_by": decided_by, "decided_at": decided_at},
            causation_id,
        )

    def record_rejection(
        self,
        *,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id, unless=self.decision is not None):
            self._rejected(policy_version, rule, explanation, decided_by, decided_at, causation_id)

    @event("Rejected")
    def _rejected(
        self,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        rejection = {"outcome": "rejected", "policy_version": policy_version, "rule": rule}
        why = {"explanation": explanation, "decided_by": decided_by, "decided_at": decided_at}
        self._decided({**rejection, **why}, causation_id)

    def record_review_opened(
        self,
        *,
        tier: str,
        rule: str,
        deadline: datetime | None,
        opened_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._review_opened(tier, rule, deadline, opened_at, causation_id)

    @event("ReviewOpened")
    def _review_opened(
        self, tier: str, rule: str, deadline: datetime | None, at: datetime, causation_id: str
    ) -> None:
        self.review = {"tier": tier, "rule": rule, "deadline": deadline}
        self._learned(
            causation_id, "in_review", at, "service:review", "review", tier=tier, rule=rule
        )

    def record_evidence_request(
        self,
        *,
        missing: list[str],
        message: str,
        requested_by: str,
        requested_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id, unless=self.decision is not None):
            self._evidence_requested(missing, message, requested_by, requested_at, causation_id)

    @event("EvidenceRequested")
    def _evidence_requested(
        self, missing: list[str], message: str, by: str, at: datetime, causation_id: str
    ) -> None:
        self.evidence_request = {"missing": missing, "message": message, "by": by, "at": at}
        self._learned(causation_id, "evidence_requested", at, by, "review", missing=missing)

    def record_sla_breach(
        self, *, deadline: datetime, breached_at: datetime, causation_id: str
    ) -> None:
        """Review's clock ran out on this case (its own clock: paused while awaiting evidence)."""
        if self._new(causation_id):
            self._sla_breached(deadline, breached_at, causation_id)

    @event("SlaBreached")
    def _sla_breached(self, deadline: datetime, at: datetime, causation_id: str) -> None:
        if self.sla_breached_at is None:
            self.sla_breached_at = at
        self.upstream.append(causation_id)  # no step of its own in the timeline

    def record_escalation(
        self, *, tier: str, escalated_by: str, escalated_at: datetime, causation_id: str
    ) -> None:
        if self._new(causation_id):
            self._escalated(tier, escalated_by, escalated_at, causation_id)

    @event("Escalated")
    def _escalated(self, tier: str, by: str, at: datetime, causation_id: str) -> None:
        self.review = {**(self.review or {}), "tier": tier}
        self._learned(causation_id, "escalated", at, by, "review", tier=tier)

    def record_compensation(
        self, *, coupon: Money, note: str, offered_by: str, offered_at: datetime, causation_id: str
    ) -> None:
        if self._new(causation_id, unless=self.decision is not None):
            self._compensated(coupon, note, offered_by, offered_at, causation_id)

    @event("CompensationOffered")
    def _compensated(
        self, coupon: Money, note: str, by: str, at: datetime, causation_id: str
    ) -> None:
        self.compensation = {"coupon": coupon, "note": note, "by": by, "at": at}
        self._learned(causation_id, "compensation_offered", at, by, "review")

    def record_payment(
        self,
        *,
        payout_id: str,
        amount: Money,
        method: str,
        provider_reference: str,
        paid_at: datetime,
        expected_arrival: datetime,
        causation_id: str,
    ) -> None:
        already_paid = self.payout is not None and self.payout["status"] == "paid"
        if self._new(causation_id, unless=already_paid):
            self._paid(
                payout_id,
                amount,
                method,
                provider_reference,
                paid_at,
                expected_arrival,
                causation_id,
            )

    @event("PayoutSucceeded")
    def _paid(
        self,
        payout_id: str,
        amount: Money,
        method: str,
        provider_reference: str,
        paid_at: datetime,
        expected_arrival: datetime,
        causation_id: str,
    ) -> None:
        self.payout = {
            "status": "paid",
            "payout_id": payout_id,
            "amount": amount,
            "method": method,
            "provider_reference": provider_reference,
            "paid_at": paid_at,
            "expected_arrival": expected_arrival,
        }
        by = "service:payout"
        self._learned(causation_id, "paid", paid_at, by, "payout", payout_id=payout_id)

    def record_payout_failure(
        self, *, payout_id: str, cause: str, failed_at: datetime, causation_id: str
    ) -> None:
        if self._new(causation_id, unless=self.payout is not None):
            self._payout_failed(payout_id, cause, failed_at, causation_id)

    @event("PayoutFailed")
    def _payout_failed(
        self, payout_id: str, cause: str, failed_at: datetime, causation_id: str
    ) -> None:
        failure = {"status": "failed", "payout_id": payout_id, "cause": cause}
        self.payout = {**failure, "failed_at": failed_at}
        by = "service:payout"
        self._learned(causation_id, "payout_failed", failed_at, by, "payout", cause=cause)


def _why_not_withdrawable(status: Status, goods_back: bool) -> str:
    if status in PAYOUT_STARTED:
        return "the payout has already started, so the refund can no longer be withdrawn"
    if status == "withdrawn":
        return "the refund was already withdrawn"
    if goods_back:
        return "the returned goods were received, so the refund can no longer be withdrawn"
    return f"a {status} refund cannot be withdrawn"
