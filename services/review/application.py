"""Review's reactions and commands: assess each request by policy, keep the manual queue moving.

Every decision names the policy version and rule it used; every staff action
names the person. The SLA clock is data on the case (deadline, reminder time),
so timers survive restarts: `tick(now)` acts on whatever is due.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.review.assessment import assess
from services.review.calendar import WorkingCalendar
from services.review.case_opening import facts_of, recorded
from services.review.case_rules import clock_wakes_at
from services.review.customers import CustomerHistory
from services.review.domain import ReviewCase
from services.review.duties import DutyViolation
from services.review.policy_document import Policy, policy_digest
from services.review.policy_versions import PolicyBook
from services.review.recovery import RecoveryClaim, claims_for
from services.review.returns.desk import ReturnDesk
from services.review.vocabulary import LIABLE_PARTIES, StaffAction
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    RefundAppealedV1,
    RefundEvidenceAddedV1,
    RefundRequestedV1,
    RefundWithdrawnV1,
    ReturnShippedV1,
)
from shared.idempotency import KeyedRequest, Outcome
from shared.keystore import Keystore

Clock = Callable[[], datetime]


class CaseNotFound(Exception):
    """No review case for that refund."""

    def __init__(self, refund_id: str) -> None:
        super().__init__(refund_id)
        self.refund_id = refund_id


class ClaimNotFound(CaseNotFound):
    """No recovery claim against that party for that refund."""

    def __init__(self, refund_id: str, party: str) -> None:
        super().__init__(refund_id)
        self.party = party


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReviewApplication(ServiceApplication):
    """Review never needs the customer's plaintext: it stores their texts sealed, as they
    arrive; `keystore` (set by the composition root) opens them for staff to read."""

    name = "Review"
    keystore: Keystore | None = None

    def __init__(
        self, policy: Policy, env: dict[str, str] | None = None, clock: Clock = _utc_now
    ) -> None:
        super().__init__(env=env)
        self.shipped = policy
        self.now = clock
        self._policy_cache: tuple[str, Policy] = ("", policy)
        self.returns = ReturnDesk(self)  # goods back before money back

    def close(self) -> None:
        super().close()
        if self.keystore is not None:
            self.keystore.close()

    # -- the policy in force ------------------------------------------------------------------

    def _book(self) -> PolicyBook:
        try:
            book: PolicyBook = self.repository.get(PolicyBook.create_id())
        except AggregateNotFoundError:
            book = PolicyBook()
        return book

    @property
    def policy(self) -> Policy:
        """The latest published version (the shipped default until an admin publishes one).

        Asked for every request decided: the book is looked at in place, not copied (it
        holds every version ever published), and its document parsed only when it changed."""
        try:
            with self.reading(PolicyBook.create_id()) as book:
                current = book.current
                if current is not None and self._policy_cache[0] != current["digest"]:
                    parsed = Policy.model_validate(current["document"])
                    self._policy_cache = (current["digest"], parsed)
        except AggregateNotFoundError:
            current = None
        return self.shipped if current is None else self._policy_cache[1]

    @property
    def calendar(self) -> WorkingCalendar:
        return self.policy.working_calendar()

    def record_shipped_policy(self) -> None:
        """Record the shipped default as a version, so every version in force is an event.

        A newer shipped default replaces an older shipped one; a version an admin
        published stays in force until an admin publishes another.
        """
        book = self._book()
        current = book.current
        known = {v["version"] for v in book.versions}
        if current is None or (
            current["by"] == "system:shipped" and self.shipped.version not in known
        ):
            # Another replica may record it at the same moment; one record is enough.
            with contextlib.suppress(IntegrityError):
                self._publish(book, self.shipped, by="system:shipped")
                self.save(book)

    def publish_policy_once(
        self, policy: Policy, *, by: str, keyed: KeyedRequest | None
    ) -> tuple[dict[str, Any], bool]:
        """Publish a new version, at most once per idempotency key; returns the version's
        entry as first answered and whether this was a replay."""

        def attempt() -> tuple[Outcome, list[Any]]:
            book = self._book()
            self._publish(book, policy, by=by)
            return Outcome(201, book.id, book.version), [book]

        book, replayed = self.execute_once(keyed, attempt, PolicyBook)
        return dict(book.versions[-1]), replayed

    def _publish(self, book: PolicyBook, policy: Policy, *, by: str) -> None:
        book.publish(
            version=policy.version,
            digest=policy_digest(policy),
            document=policy.model_dump(mode="json", by_alias=True),
            by=by,
            at=self.now(),
        )

    def policy_versions(self) -> list[dict[str, Any]]:
        return list(self._book().versions)

    # -- reactions to intake ------------------------------------------------------------------

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        if isinstance(payload, RefundRequestedV1):
            self._open(payload, message, processing)
            return
        if isinstance(payload, ReturnShippedV1):
            self.returns.react(payload, processing)
            return
        case = self._case_or_none(payload.refund_id)
        if case is None or case.tenant != payload.tenant:
            return
        now = self.now()
        if isinstance(payload, RefundWithdrawnV1):
            case.withdraw(now)
            self.returns.react(payload, processing)  # before the goods are back: it ends
        elif isinstance(payload, RefundEvidenceAddedV1):
            was_waiting = case.state == "awaiting_evidence"
            remaining = case.paused_remaining
            case.receive_evidence([e.model_dump(mode="json") for e in payload.evidence], now)
            if was_waiting:
                self._schedule(case, now, remaining_seconds=remaining)
        elif isinstance(payload, RefundAppealedV1):
            case.reopen_on_appeal(statement=payload.statement, at=now)
            if case.state == "pending":
                self._schedule(case, now, business_days=self.policy.sla.appeal_business_days)
        processing.collect_events(case)

    def _open(
        self,
        payload: RefundRequestedV1,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        if ReviewCase.create_id(payload.refund_id) in self.repository:
            return  # the same request published again under another position
        history = self._history(payload.tenant, payload.customer_id, payload.requested_at)
        facts = facts_of(payload, history)
        history.record_request(payload.refund_id, payload.requested_at)
        policy = self.policy
        assessment = assess(policy, facts)
        now = self.now()
        planned = self.returns.plan(payload, assessment, policy, now)
        # The case records whether its approval waits for the goods, and what was asked for.
        goods = {"return_required": planned is not None, "desired_outcome": facts.desired_outcome}
        case = ReviewCase(
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            order_id=payload.order_id,
            customer_id=payload.customer_id,
            requested=payload.amount.to_money(),
            refundable=assessment.refundable,
            payment=payload.payment.model_dump(),
            reason=payload.reason,
            assessment=recorded(assessment) | goods,
            opened_at=now,
            causation_id=message.id,
            raised_by=payload.raised_by,
            evidence=[e.model_dump(mode="json") for e in payload.evidence],
        )
        if assessment.outcome == "manual":
            self._schedule(case, now, policy=policy)
        else:
            case.decide_by_rule(now)
            self.returns.after_decision(case, planned)
        processing.collect_events(case, history, *([planned] if planned else []))

    def _history(self, tenant: str, customer_id: str, at: datetime) -> CustomerHistory:
        try:
            history: CustomerHistory = self.repository.get(
                CustomerHistory.create_id(tenant, customer_id)
            )
        except AggregateNotFoundError:
            history = CustomerHistory(tenant=tenant, customer_id=customer_id, at=at)
        return history

    # -- the clock --------------------------------------------------------------------------

    def _schedule(
        self,
        case: ReviewCase,
        now: datetime,
        *,
        business_days: int | None = None,
        remaining_seconds: int | None = None,
        policy: Policy | None = None,
    ) -> None:
        policy = policy or self.policy
        calendar = policy.working_calendar()
        if remaining_seconds is not None:
            deadline = calendar.add_business_time(now, timedelta(seconds=remaining_seconds))
        else:
            days = business_days or policy.sla.review_business_days
            deadline = calendar.add_business_days(now, days)
        remind_at = max(now, deadline - timedelta(hours=policy.sla.reminder_before_hours))
        case.schedule(deadline=deadline, remind_at=remind_at, at=now)

    def schedule_review(self, case: ReviewCase, now: datetime) -> None:
        """A case back with a person (e.g. after a contested return inspection): a new stage."""
        self._schedule(case, now)

    def evidence_due(self, now: datetime) -> datetime:
        """How long a customer has to send what review asked for."""
        policy = self.policy
        return policy.working_calendar().add_business_days(now, policy.sla.evidence_business_days)

    def remaining_seconds(self, case: ReviewCase, now: datetime) -> int:
        if case.deadline is None:
            return 0
        return int(self.calendar.business_time_between(now, case.deadline).total_seconds())

    def tick(
        self,
        case_ids: Iterable[uuid.UUID],
        wakes: dict[uuid.UUID, datetime | None] | None = None,
    ) -> int:
        """Send due reminders, record breaches and escalate; returns how many cases acted.
        `wakes` gets, for each case found not due, when it next can be (sla.RunningClocks)."""
        acted = 0
        for case_id in case_ids:
            now = self.now()

            def step(case: ReviewCase, now: datetime = now) -> None:
                due = case.due(now)
                if due == "evidence_overdue":
                    remaining = case.paused_remaining
                    case.give_up_waiting(now)
                    self._schedule(case, now, remaining_seconds=remaining)
                elif due == "remind":
                    case.remind(now)
                elif due == "breach":
                    case.breach(now)
                    self._schedule(case, now)

            case: ReviewCase = self.repository.get(case_id)
            if case.due(now) is not None:
                self.update(case_id, step)
                acted += 1
            elif wakes is not None:
                wakes[case_id] = clock_wakes_at(case)
        return acted

    # -- staff commands -----------------------------------------------------------------------

    def case_for(self, refund_id: str) -> ReviewCase | None:
        return self._case_or_none(refund_id)

    def act(self, refund_id: str, change: Callable[[ReviewCase], None]) -> ReviewCase:
        """Apply one staff action (a pure decision on the case), retried on write conflicts."""
        case, _ = self.act_once(refund_id, change, None)
        return case

    def act_once(
        self, refund_id: str, change: Callable[[ReviewCase], None], keyed: KeyedRequest | None
    ) -> tuple[ReviewCase, bool]:
        """Apply one staff action at most once per idempotency key (none: like `act`).

        `change` is a pure decision on the case, redone on fresh state after a write
        conflict. An approval that splits liability opens the recovery claims in the
        same transaction, so a claim exists exactly when the approval does. Returns the
        case as first answered (a replay: at the version recorded under the key) and
        whether this was a replay. A refusal raised by `change` stores nothing.
        """

        def attempt() -> tuple[Outcome, list[Any]]:
            case = self.case(refund_id)
            was_approved = case.state == "approved"
            change(case)
            claims: list[RecoveryClaim] = []
            if case.state == "approved" and not was_approved and case.decision:
                claims = self._claims(case)
            goods = self.returns.after_decision(case)  # an approval may ask for the goods first
            return Outcome(200, case.id, case.version), [case, *claims, *goods]

        return self.execute_once(keyed, attempt, ReviewCase)

    def act_as(
        self,
        refund_id: str,
        person: str,
        action: StaffAction,
        change: Callable[[ReviewCase], None],
        keyed: KeyedRequest | None,
    ) -> tuple[ReviewCase, bool]:
        """One staff action by `person`, as `act_once`. A refusal by separation of duties is
        recorded on the case before it propagates (and is not remembered under the key, so
        a retry is decided afresh)."""
        try:
            return self.act_once(refund_id, change, keyed)
        except DutyViolation as violation:
            self.record_refusal(refund_id, person=person, action=action, rule=violation.rule)
            raise

    def _claims(self, case: ReviewCase) -> list[RecoveryClaim]:
        assert case.decision is not None
        liability = case.decision.get("liability")
        if not liability:
            return []
        return claims_for(
            refund_id=case.refund_id,
            tenant=case.tenant,
            order_id=case.order_id,
            liability=liability,
            currency=case.refundable.currency,
            at=case.decision["decided_at"],
        )

    # -- recovery claims ----------------------------------------------------------------------

    def claim(self, refund_id: str, party: str) -> RecoveryClaim | None:
        try:
            claim: Any = self.repository.get(RecoveryClaim.create_id(refund_id, party))
        except AggregateNotFoundError:
            return None
        return claim if isinstance(claim, RecoveryClaim) else None

    def claims_of(self, case: ReviewCase, *, as_opened: bool = False) -> list[RecoveryClaim]:
        """The recovery claims the case's approval opened, by party (none unless approved
        with a liability split). `as_opened`: each as it was opened, which is how the
        approval first answered them (for replays of that answer)."""
        liability = (case.decision or {}).get("liability") or {}
        found = []
        for party in LIABLE_PARTIES:
            if liability.get(party, 0) <= 0:
                continue
            claim_id = RecoveryClaim.create_id(case.refund_id, party)
            try:
                claim: RecoveryClaim = self.repository.get(
                    claim_id, version=1 if as_opened else None
                )
            except AggregateNotFoundError:
                continue
            found.append(claim)
        return found

    def settle_claim(
        self, refund_id: str, party: str, change: Callable[[RecoveryClaim], None]
    ) -> RecoveryClaim:
        claim, _ = self.settle_claim_once(refund_id, party, change, None)
        return claim

    def settle_claim_once(
        self,
        refund_id: str,
        party: str,
        change: Callable[[RecoveryClaim], None],
        keyed: KeyedRequest | None,
    ) -> tuple[RecoveryClaim, bool]:
        """Mark a claim recovered or written off, at most once per idempotency key.

        Raises ClaimNotFound for a claim that was never opened, ClaimClosed (from
        `change`) for one already settled."""

        def attempt() -> tuple[Outcome, list[Any]]:
            claim = self.claim(refund_id, party)
            if claim is None:
                raise ClaimNotFound(refund_id, party)
            change(claim)
            return Outcome(200, claim.id, claim.version), [claim]

        return self.execute_once(keyed, attempt, RecoveryClaim)

    def record_refusal(self, refund_id: str, *, person: str, action: str, rule: str) -> None:
        """A staff action broke a rule: keep it on the case's record (after refusing it)."""
        now = self.now()
        self.act(
            refund_id, lambda c: c.record_refusal(person=person, action=action, rule=rule, at=now)
        )

    def case(self, refund_id: str) -> ReviewCase:
        """The review case of `refund_id`; raises CaseNotFound."""
        case = self._case_or_none(refund_id)
        if case is None:
            raise CaseNotFound(refund_id)
        return case

    def _case_or_none(self, refund_id: str) -> ReviewCase | None:
        try:
            case: Any = self.repository.get(ReviewCase.create_id(refund_id))
        except AggregateNotFoundError:
            return None
        return case if isinstance(case, ReviewCase) else None
