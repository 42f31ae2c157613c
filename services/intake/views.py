"""How intake shows a refund and its history to the platform."""

from __future__ import annotations

from typing import Any

from services.intake.domain import RefundRequest
from services.intake.erasure import CustomerErasure
from services.intake.personal import NOTE, STATEMENT, WITHDRAWAL, Shower
from services.intake.return_schemas import return_fields
from services.intake.schemas import ErasureView, EventView, RefundView
from shared.contracts import SEALED_DESCRIPTION, stable_event_id
from shared.ids import public_id
from shared.keystore import Keystore
from shared.money import Money

# Stored event → its public type, the service the fact came from, and the facts the timeline
# shows (personal data as below; bulky snapshots stay out).
TIMELINE_EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Requested": (
        "refund.requested",
        "intake",
        ("amount", "items", "reason", "desired_outcome", "channel"),
    ),
    "Withdrawn": ("refund.withdrawn", "intake", ("reason",)),
    "EvidenceAdded": ("refund.evidence_added", "intake", ("evidence", "note")),
    "Appealed": ("refund.appealed", "intake", ("statement", "appealed", "amount")),
    "ReceiptConfirmed": ("refund.receipt_confirmed", "intake", ()),
    "Approved": ("review.approved", "review", ("amount", "policy_version", "rule")),
    "Rejected": ("review.rejected", "review", ("policy_version", "rule", "explanation")),
    "ReviewOpened": ("review.case_opened", "review", ("tier", "rule", "deadline")),
    "EvidenceRequested": ("review.evidence_requested", "review", ("missing", "message")),
    "Escalated": ("review.escalated", "review", ("tier",)),
    "CompensationOffered": ("review.compensation_offered", "review", ("coupon", "note")),
    "PayoutSucceeded": (
        "payout.succeeded",
        "payout",
        ("payout_id", "amount", "method", "provider_reference", "expected_arrival"),
    ),
    "PayoutFailed": ("payout.failed", "payout", ("payout_id", "cause")),
    # The return's steps: review's, and the shipment the platform posted.
    "ReturnRequested": (
        "refund.return_requested",
        "review",
        ("rma", "address", "items", "amount", "ship_by", "rule", "explanation"),
    ),
    "ShipByReminded": ("return.ship_by_approaching", "review", ("rma", "ship_by")),
    "ReturnShipped": ("return.shipped", "intake", ("rma", "carrier", "tracking_number")),
    "ReturnDelivered": (
        "return.delivered",
        "review",
        ("rma", "carrier", "tracking_number", "receipt_by"),
    ),
    "ReturnReceived": (
        "return.received",
        "review",
        ("rma", "items", "outcome", "amount", "deducted"),
    ),
    "ReturnDeadlineMissed": (
        "return.deadline_missed",
        "review",
        ("rma", "deadline", "due", "consequence", "rule"),
    ),
    "ExchangeReady": ("refund.exchange_ready", "review", ("rma", "items", "difference")),
}


# Facts that are personal data, sealed as stored: shown opened (or `[erased]`).
SEALED_FACTS = {
    "Withdrawn": {"reason": WITHDRAWAL},
    "EvidenceAdded": {"note": NOTE},
    "Appealed": {"statement": STATEMENT},
}


def plain(value: Any) -> Any:
    """Money → {"amount", "currency"}, recursively; everything else as it is."""
    if isinstance(value, Money):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def refund_view(refund: RefundRequest, keystore: Keystore) -> RefundView:
    """The refund with its personal data opened: plaintext, or `[erased]` after erasure."""
    show = Shower(keystore)
    return RefundView.model_validate(
        {
            "id": public_id("rf", refund.id),
            "status": refund.status,
            "amount": refund.amount.as_dict(),
            "order_id": refund.order_id,
            "customer_id": refund.customer_id,
            "items": refund.items,
            "reason": refund.reason,
            "desired_outcome": refund.desired_outcome,
            "description": show.text(refund.description, SEALED_DESCRIPTION),
            "evidence": show.evidence(refund.evidence),
            "customer": show.customer(refund.customer),
            "personal_data": "erased" if show.erased(refund.customer) else "available",
            "channel": refund.channel,
            "created_at": refund.created_on,
            "decision": plain(refund.decision),
            "decisions": plain(refund.decisions),
            "payout": plain(refund.payout),
            "withdrawal": plain(show.withdrawal(refund.withdrawal)),
            "appeals": plain(show.appeals(refund.appeals)),
            "review": plain(refund.review),
            "evidence_request": plain(refund.evidence_request),
            "compensation": plain(refund.compensation),
            "return": plain(return_fields(refund.goods_return)),
            "timeline": plain(show.timeline(refund.timeline)),
            "metadata": refund.metadata,
        }
    )


def event_view(event: Any, keystore: Keystore) -> EventView | None:
    name = type(event).__name__
    if name not in TIMELINE_EVENTS:
        return None
    kind, source, shown = TIMELINE_EVENTS[name]
    facts = {field: plain(getattr(event, field)) for field in shown}
    show = Shower(keystore)
    for field, sealed in SEALED_FACTS.get(name, {}).items():
        facts[field] = show.text(facts[field], sealed)
    if "evidence" in facts:
        facts["evidence"] = show.evidence(facts["evidence"])
    return EventView(
        id=stable_event_id("intake", event.originator_id, event.originator_version),
        type=kind,
        source=source,  # type: ignore[arg-type]
        at=_when(event),
        actor=_actor(event, source),
        position=event.originator_version,
        causation_id=getattr(event, "causation_id", None),
        data=facts,
    )


def _when(event: Any) -> Any:
    for field in ("decided_at", "paid_at", "failed_at", "at"):
        if hasattr(event, field):
            return getattr(event, field)
    return event.timestamp


def _actor(event: Any, source: str) -> str:
    if hasattr(event, "actor"):
        return str(event.actor)
    for field in ("decided_by", "by"):
        if hasattr(event, field):
            return str(getattr(event, field))
    return f"service:{source}"


def erasure_view(erasure: CustomerErasure) -> ErasureView:
    last = erasure.last or {}
    return ErasureView.model_validate(
        {
            "id": public_id("ce", erasure.id),
            "tenant": erasure.tenant,
            "customer_id": erasure.customer_id,
            "erased_at": last.get("at"),
            "erased_by": last.get("actor"),
            "reason": last.get("reason", ""),
            "refund_ids": last.get("refund_ids", []),
            "keys_erased": len(erasure.key_ids),
            "erasures": len(erasure.erasures),
        }
    )
