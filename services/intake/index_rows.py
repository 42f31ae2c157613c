"""The refund list's rows, built from intake's stored events without replaying refunds.

A row needs a refund's tenant, creation time, order, customer, version and status. The
status is derived from a handful of facts (`domain.derive_status`); `Listed` keeps only
those facts, and `FACTS` says what each stored event of a refund does to them — the same
assignments the aggregate's own event methods make, read from the stored JSON as it is
(no transcoding into datetimes and Money, no event objects, no aggregate). Replaying whole
refunds cost more than decoding every event the eventsourcing way; this costs a JSON parse
of the refund's events only.

`FACTS` is keyed by the event's name (the end of its topic, `...:RefundRequest.Approved`);
each entry mirrors the event's method in domain.py / returns.py as far as the status
depends on it. Most events' kind alone says what they do, so only `Requested` and two of
the return's steps are parsed at all. An event this table does not know (a kind added to
the refund later) is no guess: the refund is loaded from the store and its facts taken from
the aggregate (`Listed.of`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.intake.domain import RefundRequest, derive_status
from shared.readmodel import sortable


class Listed:
    """A refund as the list sees it: the row's columns and the facts its status comes from."""

    __slots__ = (
        "appeals",
        "compensation",
        "created_at",
        "customer_id",
        "decision",
        "evidence_request",
        "goods_return",
        "order_id",
        "payout",
        "receipt",
        "refund_id",
        "review",
        "tenant",
        "version",
        "withdrawal",
    )

    def __init__(
        self,
        refund_id: str,
        tenant: str,
        created_at: str,
        order_id: str,
        customer_id: str,
        version: int,
    ) -> None:
        self.refund_id = refund_id
        self.tenant = tenant
        self.created_at = created_at  # `sortable` text
        self.order_id = order_id
        self.customer_id = customer_id
        self.version = version
        self.receipt: dict[str, Any] | None = None
        self.payout: dict[str, Any] | None = None
        self.withdrawal: dict[str, Any] | None = None
        self.compensation: dict[str, Any] | None = None
        self.decision: dict[str, Any] | None = None
        self.goods_return: dict[str, dict[str, Any]] = {}
        self.evidence_request: dict[str, Any] | None = None
        self.appeals: list[dict[str, Any]] = []
        self.review: dict[str, Any] | None = None

    @classmethod
    def requested(cls, refund_id: str, state: dict[str, Any]) -> Listed:
        """A refund from its stored `Requested` event (version 1)."""
        order = state["order"]
        return cls(
            refund_id,
            state["tenant"],
            sortable(stored_datetime(state["timestamp"])),
            str(order["id"]),
            str(order["customer_id"]),
            1,
        )

    @classmethod
    def of(cls, refund: RefundRequest) -> Listed:
        """A refund's facts taken from the aggregate (loaded from the store)."""
        listed = cls(
            str(refund.id),
            refund.tenant,
            sortable(refund.created_on),
            refund.order_id,
            refund.customer_id,
            refund.version,
        )
        listed.receipt = refund.receipt
        listed.payout = refund.payout
        listed.withdrawal = refund.withdrawal
        listed.compensation = refund.compensation
        listed.decision = refund.decision
        listed.goods_return = dict(refund.goods_return)  # FACTS add steps to the copy
        listed.evidence_request = refund.evidence_request
        listed.appeals = list(refund.appeals)
        listed.review = refund.review
        return listed

    def row(self) -> tuple[Any, ...]:
        """The refund index's row (`RefundIndex.columns`)."""
        status = derive_status(self)
        return (
            self.refund_id,
            self.tenant,
            self.created_at,
            self.order_id,
            self.customer_id,
            status,
            self.version,
        )


def stored_datetime(value: Any) -> datetime:
    """A datetime as eventsourcing's JSON transcoder stores it (`datetime_iso`)."""
    if isinstance(value, dict) and value.get("_type_") == "datetime_iso":
        return datetime.fromisoformat(value["_data_"])
    raise ValueError(f"not a stored datetime: {value!r}")


RECORDED: dict[str, Any] = {"recorded": True}  # a fact whose presence alone counts


@dataclass(frozen=True, slots=True)
class Fact:
    """What one kind of stored event does to a refund's listed facts."""

    apply: Callable[[Listed, dict[str, Any]], None]
    # False: the event's kind alone says what it does, so its JSON is not even parsed.
    reads_state: bool = True


def _recorded(name: str) -> Fact:
    """The event records a fact whose presence is what the status reads (`is not None`,
    or truthiness for a review): a non-empty marker stands for it."""
    return Fact(lambda listed, state: setattr(listed, name, RECORDED), reads_state=False)


def _set(name: str, value: dict[str, Any] | None) -> Fact:
    return Fact(lambda listed, state: setattr(listed, name, value), reads_state=False)


def _returned(step: str) -> Fact:
    return Fact(lambda listed, state: listed.goods_return.update({step: RECORDED}), False)


def _received(listed: Listed, state: dict[str, Any]) -> None:
    # The inspection's outcome decides between return_received and in_review.
    listed.goods_return["received"] = {"outcome": state["outcome"]}


def _deadline_missed(listed: Listed, state: dict[str, Any]) -> None:
    listed.goods_return[f"{state['deadline']}_missed"] = RECORDED


def _appealed(listed: Listed, state: dict[str, Any]) -> None:
    listed.appeals.append(RECORDED)
    listed.decision = None  # a new round of review


FACTS: dict[str, Fact] = {
    # from the platform
    "Withdrawn": _recorded("withdrawal"),
    "EvidenceAdded": _set("evidence_request", None),
    "Appealed": Fact(_appealed, reads_state=False),
    "ReceiptConfirmed": _recorded("receipt"),
    # from review
    "Approved": _set("decision", {"outcome": "approved"}),
    "Rejected": _set("decision", {"outcome": "rejected"}),
    "ReviewOpened": _recorded("review"),
    "Escalated": _recorded("review"),
    "EvidenceRequested": _recorded("evidence_request"),
    "SlaBreached": Fact(lambda listed, state: None, reads_state=False),  # no status fact
    "CompensationOffered": _recorded("compensation"),
    # from payout
    "PayoutSucceeded": _set("payout", {"status": "paid"}),
    "PayoutFailed": _set("payout", {"status": "failed"}),
    # the return's steps (returns.py)
    "ReturnRequested": _returned("requested"),
    "ShipByReminded": _returned("reminded"),
    "ReturnShipped": _returned("shipped"),
    "ReturnDelivered": _returned("delivered"),
    "ReturnReceived": Fact(_received),
    "ReturnDeadlineMissed": Fact(_deadline_missed),
    "ExchangeReady": _returned("exchange"),
}
