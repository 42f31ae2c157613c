"""Intake's commands, queries and reactions to review and payout events."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from pydantic import BaseModel

from services.intake.domain import RefundRequest
from services.intake.erasure import CustomerErasure
from services.intake.lifecycle import LifecycleError
from services.intake.orders import FieldProblem, FieldProblems, Order, OverRefund
from services.intake.personal import NOTE, STATEMENT, WITHDRAWAL, Sealer
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    ExchangeReadyV1,
    IntegrationEvent,
    MoneyModel,
    PayoutFailedV1,
    PayoutSucceededV1,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReviewApprovedV1,
    ReviewCaseOpenedV1,
    ReviewCompensationOfferedV1,
    ReviewEscalatedV1,
    ReviewEvidenceRequestedV1,
    ReviewRejectedV1,
    ReviewSlaBreachedV1,
)
from shared.idempotency import IdempotencyKey, KeyedRequest, Outcome
from shared.ids import parse_public_id
from shared.keystore import Keystore
from shared.money import Money

Processing = ProcessingEvent[uuid.UUID]

# How a refund records each fact review and payout publish: the method takes the fact's
# fields by their names on the wire (and the id of the message that carried it).
UPSTREAM_FACTS: dict[type[IntegrationEvent], Callable[..., None]] = {
    ReviewApprovedV1: RefundRequest.record_approval,
    ReviewRejectedV1: RefundRequest.record_rejection,
    ReviewCaseOpenedV1: RefundRequest.record_review_opened,
    ReviewEvidenceRequestedV1: RefundRequest.record_evidence_request,
    ReviewEscalatedV1: RefundRequest.record_escalation,
    ReviewSlaBreachedV1: RefundRequest.record_sla_breach,
    ReviewCompensationOfferedV1: RefundRequest.record_compensation,
    PayoutSucceededV1: RefundRequest.record_payment,
    PayoutFailedV1: RefundRequest.record_payout_failure,
    ReturnRequestedV1: RefundRequest.record_return_request,
    ReturnShipByApproachingV1: RefundRequest.record_ship_by_reminder,
    ReturnDeliveredV1: RefundRequest.record_return_delivery,
    ReturnReceivedV1: RefundRequest.record_return_receipt,
    ReturnDeadlineMissedV1: RefundRequest.record_missed_deadline,
    ExchangeReadyV1: RefundRequest.record_exchange_ready,
}


@cache
def recorded_fields(record: Callable[..., None]) -> tuple[str, ...]:
    """The facts `record` takes, by name."""
    return tuple(
        name
        for name in inspect.signature(record).parameters
        if name not in {"self", "causation_id"}
    )


def facts_for(record: Callable[..., None], payload: IntegrationEvent) -> dict[str, Any]:
    """The payload's fields that `record` takes, as plain data the store keeps: money as the
    domain's Money, nested parts (a return's address and items) as dicts."""
    return {name: _plain(getattr(payload, name)) for name in recorded_fields(record)}


def _plain(value: Any) -> Any:
    if isinstance(value, MoneyModel):
        return value.to_money()
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class RefundNotFound(Exception):
    """No refund with that id for this tenant (another tenant's looks the same)."""


class OrderMismatch(FieldProblems):
    """The order snapshot contradicts what the order's first refund recorded (a 409, not the
    422 of other field problems: the request is fine, the two snapshots disagree)."""


class CustomerNotFound(LookupError):
    """The tenant has no refunds of that customer (and the keystore no key); the arguments
    are the tenant and the customer's id."""


class IntakeApplication(ServiceApplication):
    name = "Intake"
    keystore: Keystore | None = None  # set by the composition root; personal data needs it

    @property
    def keys(self) -> Keystore:
        if self.keystore is None:
            raise RuntimeError("intake needs a keystore to seal personal data (open_keystore)")
        return self.keystore

    def sealer(self, tenant: str, customer_id: str) -> Sealer:
        return Sealer(self.keys, (tenant, customer_id))

    def close(self) -> None:
        super().close()
        if self.keystore is not None:
            self.keystore.close()

    # -- commands ---------------------------------------------------------------------------

    def request_refund(
        self, *, tenant: str, draft: dict[str, Any], actor: str, keyed: KeyedRequest | None
    ) -> tuple[RefundRequest, bool]:
        """Record a new request and reserve its amount on the order, atomically.

        `draft` is the validated request: `items` and `amount` may be None (the
        whole order; what those items cost, capped by what is left to refund).
        Returns the refund as first answered and whether this was a replay. Personal data
        is sealed with the customer's key before anything is stored.
        """
        draft = self.sealer(tenant, draft["order"]["customer_id"]).request(draft)

        def attempt() -> tuple[Outcome, list[Any]]:
            order = self._order(tenant, draft["order"])
            named = draft["items"] is not None
            items = draft["items"] if named else _whole_order(draft["order"])
            amount = draft["amount"] or _default_amount(draft["order"], items, order)
            # The request as drafted, with the items and amount it defaults to.
            requested = {**draft, "items": items, "amount": amount}
            requested.setdefault("raised_by", None)
            refund = RefundRequest(**requested, items_named=named, tenant=tenant, actor=actor)
            paths = {item["sku"]: f"items.{i}.quantity" for i, item in enumerate(items)}
            order.reserve(str(refund.id), amount, refund.reserved_items, item_paths=paths)
            return Outcome(201, refund.id, refund.version), [refund, order]

        return self.execute_once(keyed, attempt, RefundRequest)

    def withdraw(
        self, *, tenant: str, refund_id: str, reason: str, actor: str, keyed: KeyedRequest | None
    ) -> tuple[RefundRequest, bool]:
        def change(refund: RefundRequest) -> list[Any]:
            sealed = self.sealer(tenant, refund.customer_id).text(reason, WITHDRAWAL)
            refund.withdraw(reason=sealed, actor=actor, at=_now())
            order = self._existing_order(refund)
            order.release(str(refund.id), why="withdrawn")
            return [order]

        return self._on_refund(tenant, refund_id, keyed, change)

    def add_evidence(
        self,
        *,
        tenant: str,
        refund_id: str,
        evidence: list[dict[str, Any]],
        note: str,
        actor: str,
        keyed: KeyedRequest | None,
    ) -> tuple[RefundRequest, bool]:
        def change(refund: RefundRequest) -> list[Any]:
            sealer = self.sealer(tenant, refund.customer_id)
            refund.add_evidence(
                evidence=sealer.evidence(evidence),
                note=sealer.text(note, NOTE),
                actor=actor,
                at=_now(),
            )
            return []

        return self._on_refund(tenant, refund_id, keyed, change)

    def appeal(
        self, *, tenant: str, refund_id: str, statement: str, actor: str, keyed: KeyedRequest | None
    ) -> tuple[RefundRequest, bool]:
        """Reopen a rejected refund; its amount is reserved again, if the order still has it."""

        def change(refund: RefundRequest) -> list[Any]:
            sealed = self.sealer(tenant, refund.customer_id).text(statement, STATEMENT)
            refund.appeal(statement=sealed, actor=actor, at=_now())
            order = self._existing_order(refund)
            try:
                order.reserve(str(refund.id), refund.amount, refund.reserved_items)
            except OverRefund as taken:
                raise LifecycleError(
                    "balance_taken",
                    "since the rejection, other refunds of this order took its balance: "
                    + str(taken),
                ) from None
            return [order]

        return self._on_refund(tenant, refund_id, keyed, change)

    def ship_return(
        self,
        *,
        tenant: str,
        refund_id: str,
        carrier: str,
        tracking_number: str,
        actor: str,
        keyed: KeyedRequest | None,
    ) -> tuple[RefundRequest, bool]:
        """Record the return's shipment (published as return.shipped.v1); the same shipment
        posted again records nothing new."""

        def change(refund: RefundRequest) -> list[Any]:
            refund.ship_return(
                carrier=carrier, tracking_number=tracking_number, actor=actor, at=_now()
            )
            return []

        return self._on_refund(tenant, refund_id, keyed, change)

    def confirm_receipt(
        self, *, tenant: str, refund_id: str, actor: str, keyed: KeyedRequest | None
    ) -> tuple[RefundRequest, bool]:
        def change(refund: RefundRequest) -> list[Any]:
            refund.confirm_receipt(actor=actor, at=_now())
            return []

        return self._on_refund(tenant, refund_id, keyed, change)

    def erase_customer(
        self,
        *,
        tenant: str,
        customer_id: str,
        refund_ids: list[str],
        reason: str,
        actor: str,
        keyed: KeyedRequest | None,
    ) -> tuple[CustomerErasure, bool]:
        """Shred the customer's keys, then record who did it: their personal data is gone from
        every store and topic at once, while amounts and decisions stay.

        The keys go first: a crash in between leaves them shredded without the record, and
        the client's retry records it. A replay of a key answers without erasing again (the
        customer may have come back with a new key since).
        """
        replay = self._replay(keyed)
        if replay is not None:
            return self.repository.get(replay.aggregate_id, version=replay.version), True
        subject = (tenant, customer_id)
        if not refund_ids and not self.keys.knows(subject):
            raise CustomerNotFound(tenant, customer_id)
        key_ids = [tombstone.key_id for tombstone in self.keys.erase(subject, by=actor)]

        def attempt() -> tuple[Outcome, list[Any]]:
            erasure = self.erasure_of(tenant, customer_id) or CustomerErasure(
                tenant=tenant, customer_id=customer_id
            )
            erasure.erase(
                key_ids=key_ids, refund_ids=refund_ids, reason=reason, actor=actor, at=_now()
            )
            return Outcome(200, erasure.id, erasure.version), [erasure]

        return self.execute_once(keyed, attempt, CustomerErasure)

    def erasure_of(self, tenant: str, customer_id: str) -> CustomerErasure | None:
        try:
            found: CustomerErasure = self.repository.get(
                CustomerErasure.create_id(tenant, customer_id)
            )
        except AggregateNotFoundError:
            return None
        return found

    def _replay(self, keyed: KeyedRequest | None) -> Outcome | None:
        """The remembered answer under this key (IdempotencyMismatch for another request)."""
        if keyed is None:
            return None
        try:
            with self.reading(keyed.record_id) as record:
                return cast(IdempotencyKey, record).answer(keyed, self.clock())
        except AggregateNotFoundError:
            return None

    def _on_refund(
        self,
        tenant: str,
        refund_id: str,
        keyed: KeyedRequest | None,
        change: Callable[[RefundRequest], list[Any]],
    ) -> tuple[RefundRequest, bool]:
        """One platform action on one refund (plus what it touches), once per key."""

        def attempt() -> tuple[Outcome, list[Any]]:
            refund = self._refund(tenant, refund_id)
            touched = change(refund)
            return Outcome(200, refund.id, refund.version), [refund, *touched]

        return self.execute_once(keyed, attempt, RefundRequest)

    # -- queries ----------------------------------------------------------------------------

    def refund_for(self, tenant: str, refund_id: str) -> RefundRequest:
        return self._refund(tenant, refund_id)

    def refund_for_staff(self, refund_id: str) -> RefundRequest:
        """Any tenant's refund: staff work across tenants (their roles were checked)."""
        return self._refund(None, refund_id)

    @contextmanager
    def showing(self, tenant: str | None, refund_id: str) -> Iterator[RefundRequest]:
        """The tenant's refund (any tenant's for None: staff) to show within the block, no
        copy made: never change it nor keep it past the block (`ServiceApplication.reading`)."""
        uid = self._refund_uid(refund_id)
        try:
            with self.reading(uid) as refund:
                yield self._of_tenant(refund, tenant, refund_id)
        except AggregateNotFoundError:
            raise RefundNotFound(refund_id) from None

    def history(self, tenant: str, refund_id: str) -> list[Any]:
        """The refund's own stored events, oldest first."""
        with self.showing(tenant, refund_id) as refund:
            uid = refund.id
        return list(self.repository.event_store.get(uid))

    def order_of(self, tenant: str, order_id: str) -> Order | None:
        try:
            order: Order = self.repository.get(Order.create_id(tenant, order_id))
        except AggregateNotFoundError:
            return None
        return order

    # -- reactions --------------------------------------------------------------------------

    reacts_to = frozenset(UPSTREAM_FACTS)  # what else review and payout publish is passed over

    def react(self, payload: IntegrationEvent, message: CloudEvent, processing: Processing) -> None:
        record = UPSTREAM_FACTS.get(type(payload))
        uid = parse_public_id("rf", payload.refund_id)
        if record is None or uid is None:
            return
        try:
            refund: Any = self.repository.get(uid)
        except AggregateNotFoundError:
            return
        if not isinstance(refund, RefundRequest) or refund.tenant != payload.tenant:
            return
        record(refund, **facts_for(record, payload), causation_id=message.id)
        balance = _order_balance(payload, refund)
        if balance is None:  # most facts leave the order's balance alone: no need to load it
            processing.collect_events(refund)
            return
        order = self._existing_order(refund)
        balance(order)
        processing.collect_events(refund, order)

    # -- helpers ----------------------------------------------------------------------------

    def _refund(self, tenant: str | None, refund_id: str) -> RefundRequest:
        """The tenant's refund, a copy of its own to decide on."""
        uid = self._refund_uid(refund_id)
        try:
            refund: Any = self.repository.get(uid)
        except AggregateNotFoundError:
            raise RefundNotFound(refund_id) from None
        return self._of_tenant(refund, tenant, refund_id)

    @staticmethod
    def _refund_uid(refund_id: str) -> uuid.UUID:
        uid = parse_public_id("rf", refund_id)
        if uid is None:
            raise RefundNotFound(refund_id)
        return uid

    @staticmethod
    def _of_tenant(found: Any, tenant: str | None, refund_id: str) -> RefundRequest:
        # Ids of other aggregates (orders, keys) must look like unknown refunds too.
        if not isinstance(found, RefundRequest) or tenant not in (None, found.tenant):
            raise RefundNotFound(refund_id)
        return found

    def _order(self, tenant: str, snapshot: dict[str, Any]) -> Order:
        """The order as first recorded, after checking that `snapshot` agrees with it."""
        order = self.order_of(tenant, snapshot["id"])
        if order is None:
            return Order(tenant=tenant, order_id=snapshot["id"], snapshot=snapshot)
        problems = order.disagreements(snapshot)
        if problems:
            raise OrderMismatch(problems)
        order.record_delivery(snapshot.get("delivered_at"))
        return order

    def _existing_order(self, refund: RefundRequest) -> Order:
        order: Order = self.repository.get(Order.create_id(refund.tenant, refund.order_id))
        return order


def _now() -> datetime:
    return datetime.now(UTC)


def _order_balance(
    payload: IntegrationEvent, refund: RefundRequest
) -> Callable[[Order], None] | None:
    """What the order's balance learns from an upstream fact the refund just recorded, or
    None when it learns nothing (a payout, a case opened, a reminder...)."""
    rid = str(refund.id)
    if isinstance(payload, ReviewApprovedV1):
        amount = payload.amount.to_money()
        return lambda order: order.settle(rid, amount)
    if isinstance(payload, ReviewRejectedV1) and refund.status == "rejected":
        return lambda order: order.release(rid, why="rejected")
    if isinstance(payload, ReviewCompensationOfferedV1) and refund.status == "closed":
        return lambda order: order.release(rid, why="compensated with a coupon")
    if isinstance(payload, ReturnDeadlineMissedV1) and refund.status == "return_not_shipped":
        return lambda order: order.release(rid, why="the return was not shipped in time")
    if isinstance(payload, ExchangeReadyV1) and refund.status == "exchange_ready":
        # An exchange pays only a price difference: the rest goes back to the order.
        if payload.difference is None:
            return lambda order: order.release(rid, why="exchanged")
        difference = payload.difference.to_money()
        return lambda order: order.settle(rid, difference)
    return None


def _whole_order(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"sku": item["sku"], "quantity": item["quantity"]} for item in order["items"]]


def _default_amount(
    order_snapshot: dict[str, Any], items: list[dict[str, Any]], order: Order
) -> Money:
    """What the items cost (shipping excluded), capped by what the order has left to refund.

    Review's policy may approve less (coupons, pro-rata); this is what is asked for.
    """
    prices = {item["sku"]: item["unit_price"]["amount"] for item in order_snapshot["items"]}
    cost = sum(prices[item["sku"]] * item["quantity"] for item in items)
    left = order.refundable()
    amount = min(cost, left.amount)
    if amount <= 0:
        raise OverRefund(
            [FieldProblem("amount", "nothing_refundable", "this order has nothing left to refund")]
        )
    return Money(amount, left.currency)
