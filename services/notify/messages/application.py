"""Customer messages, the application side: the steps upstream events make due (with the
in-app messages, posted at once), the senders' claims, and the staff's log and resends."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, cast

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from services.notify.messages.domain import Correspondence
from services.notify.messages.returns import return_step
from services.notify.messages.steps import (
    CUSTOMER_ERASED,
    IN_APP,
    RESENDABLE,
    ChannelName,
    notification_id,
    occurrence_key,
    occurrence_of,
    step_of,
)
from services.notify.messages.templates import render
from shared.application import ServiceApplication
from shared.contracts import (
    ESCALATED_ON_APPEAL,
    SEALED_EMAIL,
    SEALED_PHONE,
    CloudEvent,
    CustomerErasedV1,
    IntegrationEvent,
    Locale,
    NotificationFailedV1,
    NotificationSentV1,
    PayoutFailedV1,
    PayoutSucceededV1,
    RefundRequestedV1,
    RefundWithdrawnV1,
    ReviewApprovedV1,
    ReviewCaseOpenedV1,
    ReviewCompensationOfferedV1,
    ReviewEscalatedV1,
    ReviewEvidenceReceivedV1,
    ReviewEvidenceRequestedV1,
    ReviewRejectedV1,
    fields_of,
)
from shared.keystore import Keystore, Subject, is_sealed, key_id_of
from shared.relay import publishes

log = logging.getLogger(__name__)
Processing = ProcessingEvent[uuid.UUID]  # a reaction's new events, stored with its tracking
Decision = Callable[[Correspondence], object]  # a pure decision on a freshly loaded one
Loaded = dict[uuid.UUID, Correspondence]
# The in-app message as the customer sees it is stored sealed under the contact's key.
SEALED_TITLE = "in_app.title"
SEALED_BODY = "in_app.body"


def step_for(payload: IntegrationEvent) -> tuple[str, dict[str, Any]] | None:
    """The customer-facing step an upstream event announces, with the facts its message states.

    Facts are stored JSON-plain (money as {amount, currency}, times as ISO text)
    so that a stored step renders the same way whatever the contracts become.
    """
    if (return_due := return_step(payload)) is not None:  # the steps of a return
        return return_due
    if isinstance(payload, RefundRequestedV1):
        return "received", {"amount": payload.amount.model_dump(), "order_id": payload.order_id}
    if isinstance(payload, ReviewApprovedV1):
        return "approved", {
            "amount": payload.amount.model_dump(),
            "order_id": payload.order_id,
            "method": payload.payment.method,
        }
    if isinstance(payload, ReviewRejectedV1):
        return "rejected", {
            "order_id": payload.order_id,
            "rule": payload.rule,
            "policy_version": payload.policy_version,
            "explanation": dict(payload.explanation),
        }
    if isinstance(payload, PayoutSucceededV1):
        return "paid", {
            "amount": payload.amount.model_dump(),
            "method": payload.method,
            "paid_at": payload.paid_at.isoformat(),
            "expected_arrival": payload.expected_arrival.isoformat(),
        }
    if isinstance(payload, PayoutFailedV1):
        return "payout_failed", {"amount": payload.amount.model_dump(), "method": payload.method}
    if isinstance(payload, ReviewEvidenceRequestedV1):
        # Exactly what is missing and how to send it; one message per request.
        return "evidence_requested", {
            "order_id": payload.order_id,
            "missing": list(payload.missing),
            "message": payload.message,
        }
    if isinstance(payload, ReviewCompensationOfferedV1):
        return "compensation_offered", {
            "order_id": payload.order_id,
            "coupon": payload.coupon.model_dump(),
        }
    if isinstance(payload, RefundWithdrawnV1):
        return "withdrawn", {"order_id": payload.order_id}
    if isinstance(payload, ReviewCaseOpenedV1):
        deadline = payload.deadline.isoformat() if payload.deadline else None
        return "in_review", {"order_id": payload.order_id, "deadline": deadline}
    if isinstance(payload, ReviewEscalatedV1) and payload.reason == ESCALATED_ON_APPEAL:
        # Review's own record of the appeal, so it comes after the rejection it reopens
        # (one topic, one partition per refund); other escalations are staff business.
        return "in_review", {"order_id": payload.order_id, "deadline": None, "why": "appeal"}
    if isinstance(payload, ReviewEvidenceReceivedV1):  # the evidence asked for arrived
        return "in_review", {"order_id": payload.order_id, "deadline": None, "why": "evidence"}
    return None


class NotificationNotFound(LookupError):
    """No message of that id for this refund."""


class NotResendable(ValueError):
    """Only an uncertain or failed message is sent again; `status` is what this one is."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class Messages:
    """One correspondence per refund in notify's store: what upstream events make due, and
    what the senders and the staff do with it."""

    def __init__(self, app: ServiceApplication, keys: Callable[[], Keystore]) -> None:
        self.app = app
        self._keys = keys  # contacts and in-app texts are sealed under the customer's key

    @property
    def keys(self) -> Keystore:
        return self._keys()

    def react(self, payload: IntegrationEvent, message: CloudEvent, into: Processing) -> None:
        """Schedule the step `payload` announces, into the reaction stored with its tracking."""
        if isinstance(payload, CustomerErasedV1):
            self._forget(payload, into)
            return
        due = step_for(payload)
        if due is None:
            return
        correspondence = self._open(payload.refund_id, payload.tenant)
        if isinstance(payload, RefundRequestedV1):
            contact = payload.customer
            subject = (payload.tenant, payload.customer_id)
            correspondence.record_contact(
                email=self._sealed(subject, contact.email, SEALED_EMAIL),
                phone=self._sealed(subject, contact.phone, SEALED_PHONE),
                locale=contact.locale,
                customer_id=payload.customer_id,
            )
        step, facts = due
        correspondence.schedule(step, facts, causation_id=message.id)
        self._post_in_app(correspondence, sent_at=message.time)
        into.collect_events(correspondence)

    def _sealed(self, subject: Subject, address: str | None, field: str) -> str | None:
        """Contacts arrive sealed; one that does not (a producer from before sealing) is
        sealed here, so that notify never stores a plaintext address."""
        if address is None or is_sealed(address):
            return address
        return self.keys.seal(subject, address, field=field)

    def _forget(self, payload: CustomerErasedV1, into: Processing) -> None:
        """The customer was erased: what was still to be sent to them fails, not sent."""
        touched = []
        for refund_id in payload.refund_ids:
            try:
                correspondence = self.correspondence(Correspondence.create_id(refund_id))
            except AggregateNotFoundError:
                continue  # nothing scheduled yet; a later step fails at send time
            if correspondence.tenant == payload.tenant and correspondence.fail_open(
                cause=CUSTOMER_ERASED, failed_at=payload.erased_at
            ):
                touched.append(correspondence)
        into.collect_events(*touched)

    def _in_app_key(self, correspondence: Correspondence) -> str | None:
        """The key the in-app texts are sealed with: the contact's (None: erased)."""
        contact = correspondence.contact
        assert contact is not None  # in-app messages are due only once the contact is known
        key_id = key_id_of(contact.email) or key_id_of(contact.phone)
        if key_id is None:  # no e-mail or phone: the customer's live key
            key_id = self.keys.current_key((correspondence.tenant, str(contact.customer_id)))
        return None if self.keys.is_erased(key_id) else key_id

    def _post_in_app(self, correspondence: Correspondence, *, sent_at: datetime) -> None:
        """In-app messages are delivered by storing them, in the same transaction as the
        upstream event that made them due: exactly once, with no worker involved. Their
        texts are stored sealed; for an erased customer they fail instead."""
        pending = correspondence.pending(channels=(IN_APP,))
        key_id = self._in_app_key(correspondence) if pending else None
        for due in pending:
            if key_id is None:
                correspondence.record_failed(
                    step=due.step, channel=IN_APP, cause=CUSTOMER_ERASED, failed_at=sent_at
                )
                continue
            try:
                rendering = render(
                    due.step,
                    due.locale,
                    due.facts,
                    reference=correspondence.refund_id,
                    channel=IN_APP,
                )
            except KeyError as error:  # a step without an in-app template must not stop the rest
                log.error("cannot render %s/in_app: %s", due.step, error)
                correspondence.record_failed(
                    step=due.step, channel=IN_APP, cause=f"template: {error}", failed_at=sent_at
                )
                continue
            correspondence.record_sent(
                step=due.step,
                channel=IN_APP,
                message_id=notification_id(correspondence.refund_id, due.step, IN_APP),
                recipient_masked=f"customer:{due.address}",
                locale=rendering.locale,
                template=rendering.template,
                sent_at=sent_at,
                title=self.keys.seal_with(key_id, rendering.subject, field=SEALED_TITLE),
                body=self.keys.seal_with(key_id, rendering.body, field=SEALED_BODY),
            )

    def _open(self, refund_id: str, tenant: str) -> Correspondence:
        # Whichever of the refund's events arrives first opens it; a concurrent
        # opener loses on the version check and `handle()` retries on fresh state.
        try:
            return self.correspondence(Correspondence.create_id(refund_id))
        except AggregateNotFoundError:
            return Correspondence(refund_id=refund_id, tenant=tenant)

    def correspondence(self, correspondence_id: uuid.UUID) -> Correspondence:
        found: Correspondence = self.app.repository.get(correspondence_id)
        return found

    def start_attempt(
        self, correspondence_id: uuid.UUID, step: str, channel: str, claim: str | None = None
    ) -> int | None:
        """Claim the next attempt of a message; None when it is no longer open (or claimed
        by someone else: `claim` recognises one's own, see `Correspondence.start_attempt`)."""
        claimed: list[int | None] = []
        self.app.update(
            correspondence_id,
            lambda correspondence: claimed.append(
                correspondence.start_attempt(step, channel, claim)
            ),
        )
        return claimed[-1]

    def start_attempts(
        self,
        cids: list[uuid.UUID],
        claims: list[tuple[str, str]],
        channel: str,
        loaded: Loaded | None = None,
    ) -> list[int | None]:
        """Claim several messages' next attempts in one save: for each (correspondence id,
        (step, claim token)), its attempt number, or None when it is not ours to send (as
        `start_attempt`). `loaded`: see `decide_all`."""
        decisions = [_claim(step, channel, claim) for step, claim in claims]
        answers = self.decide_all(list(zip(cids, decisions, strict=True)), loaded)
        return [cast(int | None, answer) for answer in answers]

    def record_outcomes(
        self, outcomes: list[tuple[uuid.UUID, Decision]], loaded: Loaded | None = None
    ) -> None:
        """Store what became of several messages in one save. `loaded`: see `decide_all`."""
        self.decide_all(outcomes, loaded)

    def decide_all(
        self, decisions: list[tuple[uuid.UUID, Decision]], loaded: Loaded | None = None
    ) -> list[object]:
        """Apply each decision to its correspondence and save them all in one transaction;
        on a concurrent write, decide them all again on fresh state. The decisions must be
        pure (no I/O), so deciding again is safe; answers what each said.

        `loaded` holds correspondences the caller loaded before, to decide on first instead
        of loading them again (a stale one only costs a conflict, then a reload); it is
        emptied first, since a save that fails leaves its aggregates unusable, and filled
        with the saved ones, up to date, when the save succeeds."""
        first = dict(loaded) if loaded else {}
        if loaded is not None:
            loaded.clear()
        for attempt in range(self.app.max_conflict_retries):
            using: Loaded = first if attempt == 0 else {}
            answers = []
            for cid, decide in decisions:
                if cid not in using:
                    using[cid] = self.correspondence(cid)
                answers.append(decide(using[cid]))
            try:
                self.app.save(*using.values())
            except IntegrityError:
                continue
            if loaded is not None:
                loaded.update(using)
            return answers
        raise RuntimeError(f"could not store {len(decisions)} decisions: persistent conflict")

    def notifications_for(self, refund_id: str) -> list[dict[str, Any]]:
        """Every message of the refund with what became of it, in scheduling order."""
        try:
            # Only read: the cached correspondence itself, no copy (see `reading`).
            with self.app.reading(Correspondence.create_id(refund_id)) as correspondence:
                return self._entries(refund_id, correspondence)
        except AggregateNotFoundError:
            return []

    @staticmethod
    def _entries(refund_id: str, correspondence: Correspondence) -> list[dict[str, Any]]:
        keys = list(correspondence.deliveries)
        keys += [
            (d.step, d.channel) for d in correspondence.pending() if (d.step, d.channel) not in keys
        ]
        found = []
        for step, channel in keys:
            delivery = correspondence.delivery(step, channel)
            found.append(
                {
                    "notification_id": notification_id(refund_id, step, channel),
                    "refund_id": refund_id,
                    "step": step_of(step),
                    "occurrence": occurrence_of(step),
                    "channel": channel,
                    "status": delivery.status,
                    "attempts": delivery.attempts,
                    "last_error": delivery.last_error if delivery.status != "sent" else None,
                    **delivery.sent,
                }
            )
        return found

    def request_resend(self, refund_id: str, notification: str, *, actor: str) -> dict[str, Any]:
        """Send an uncertain or failed message again (a person's decision); its entry then.

        NotificationNotFound when the refund has no such message; NotResendable when it is
        neither uncertain nor failed (a pending one is sent anyway, a sent one was).
        """
        current = self._entry(refund_id, notification)
        if current["status"] not in RESENDABLE:
            raise NotResendable(current["status"])
        key = occurrence_key(current["step"], current["occurrence"])
        resend = _resend(key, current["channel"], actor)
        self.app.update(Correspondence.create_id(refund_id), resend)
        return self._entry(refund_id, notification)

    def _entry(self, refund_id: str, notification: str) -> dict[str, Any]:
        for entry in self.notifications_for(refund_id):
            if entry["notification_id"] == notification:
                return entry
        raise NotificationNotFound(notification)


def _claim(step: str, channel: str, claim: str) -> Decision:
    return lambda correspondence: correspondence.start_attempt(step, channel, claim)


def _resend(step: str, channel: str, actor: str) -> Callable[[Correspondence], object]:
    return lambda correspondence: correspondence.request_resend(step, channel, actor=actor)


@publishes(Correspondence.MessageSent, Correspondence.MessageFailed)
def to_integration(event: Aggregate.Event) -> IntegrationEvent | None:
    """Notify publishes outcomes; contacts, schedules and attempts stay private."""
    if isinstance(event, Correspondence.MessageSent):
        return NotificationSentV1(
            **_which_message(event),
            recipient=event.recipient_masked,
            locale=cast(Locale, event.locale),
            template=event.template,
            sent_at=event.sent_at,
        )
    if isinstance(event, Correspondence.MessageFailed):
        return NotificationFailedV1(
            **_which_message(event), **fields_of(event, "attempts", "cause", "failed_at")
        )
    return None


OUTCOMES = {
    NotificationSentV1.TYPE: Correspondence.MessageSent,
    NotificationFailedV1.TYPE: Correspondence.MessageFailed,
}


def publishing(types: Collection[str]) -> Callable[[Aggregate.Event], IntegrationEvent | None]:
    """The mapping of the outcomes a deployment publishes (`REFUNDS_PUBLISHED_EVENTS`): the
    relay then reads and decodes only their stored events, and passes over the rest in SQL."""
    if set(OUTCOMES) <= set(types):
        return to_integration
    chosen = tuple(stored for published, stored in OUTCOMES.items() if published in types)

    @publishes(*chosen)
    def chosen_only(event: Aggregate.Event) -> IntegrationEvent | None:
        return to_integration(event) if isinstance(event, chosen) else None

    return chosen_only


def _which_message(event: Correspondence.MessageSent | Correspondence.MessageFailed) -> Any:
    """The fields naming the message an outcome is about, as both outcome events carry them."""
    return {
        "refund_id": event.refund_id,
        "tenant": event.tenant,
        "notification_id": notification_id(event.refund_id, event.step, event.channel),
        "step": step_of(event.step),
        "occurrence": occurrence_of(event.step),
        # The domain keeps plain strings; pydantic still checks this one at run time.
        "channel": cast(ChannelName, event.channel),
    }
