"""Integration event samples for tests/fixtures/events/: captured from a frozen stack's topics.

Used by `scripts/freeze_stores.py`. One CloudEvent per type, the richest the mix made
(`SAMPLE_KIND`), never about an erased customer's refund; a type the mix cannot publish is
written from its model. A sample is written once, by the first release that has the type,
and never replaced (MANIFEST.json records its digest).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from frozen_mix import Mix

from services.intake.tenants import PREFIX_LENGTH, ApiKey
from shared.contracts import (
    EVENT_TYPES,
    ApiKeyIssuedV1,
    ApiKeyRevokedV1,
    CloudEvent,
    IntegrationEvent,
    ReturnDeadlineMissedV1,
    ReturnShipByApproachingV1,
    ReviewSlaBreachedV1,
    envelope,
)
from shared.ids import public_id

SERVICES = ("intake", "review", "payout", "notify")
TOPICS = tuple(f"refunds.{service}.v1" for service in SERVICES)

# The refund whose events make each type's sample (the richest of its kind); otherwise the
# first event of the type about a customer who was not erased.
SAMPLE_KIND = {
    "refund.requested.v1": "evidence",  # manual review: a case to withdraw or add evidence to
    "refund.withdrawn.v1": "withdrawn",
    "refund.evidence_added.v1": "evidence",
    "refund.appealed.v1": "appeal_rejected",
    "refund.receipt_confirmed.v1": "closed",
    "review.approved.v1": "two_approvals",
    "review.rejected.v1": "rejected",
    "review.case_opened.v1": "evidence",
    "review.evidence_requested.v1": "evidence",
    "review.evidence_received.v1": "evidence",
    "review.escalated.v1": "appeal_rejected",  # the escalation notify tells the customer of
    "review.compensation_offered.v1": "compensated",
    "review.recovery_claimed.v1": "two_approvals",
    "payout.succeeded.v1": "cross_border",
    "payout.failed.v1": "payout_retried",
    "notification.sent.v1": "paid",
    "notification.failed.v1": "rejected",
    "refund.return_requested.v1": "returned",
    "return.shipped.v1": "returned",
    "return.delivered.v1": "returned",
    "return.received.v1": "returned_restocking_fee",  # a deduction, its rule and explanation
    "refund.exchange_ready.v1": "exchanged",
}


async def read_topics(bootstrap: str) -> list[bytes]:
    """Every record of the four topics, from the beginning."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in TOPICS
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while any([await consumer.position(p) < ends[p] for p in partitions]):
            if time.monotonic() > deadline:
                raise RuntimeError("could not read the topics to their end")
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                values += [record.value for record in records if record.value]
        return values
    finally:
        await consumer.stop()


def pick_samples(raw: list[bytes], mix: Mix) -> dict[str, bytes]:
    erased = {i for i, r in mix.refunds.items() if r["kind"] == "erased"}
    kind_of = {refund_id: r["kind"] for refund_id, r in mix.refunds.items()}
    chosen: dict[str, tuple[int, bytes]] = {}
    for value in raw:
        event = CloudEvent.from_bytes(value)
        if event.subject in erased and event.type != "customer.erased.v1":
            continue
        rank = 0 if kind_of.get(event.subject) == SAMPLE_KIND.get(event.type) else 1
        if event.type not in chosen or rank < chosen[event.type][0]:
            chosen[event.type] = (rank, value)
    return {kind: value for kind, (_, value) in chosen.items()}


def _envelope(
    payload: IntegrationEvent, source: str, position: int, at: datetime | None = None
) -> bytes:
    """A CloudEvent as the relay would publish it (at `at`, else now), at a position no
    captured event has."""
    at = at or datetime.now(UTC).replace(microsecond=0)
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"frozen/{payload.refund_id}/{payload.TYPE}"))
    event = envelope(
        payload, source=source, event_id=event_id, position=position, time=at, causation_id=None
    )
    return event.to_bytes()


def from_models(mix: Mix, keys: dict[str, dict[str, str]]) -> dict[str, bytes]:
    """Samples of the types the mix does not publish: review.sla_breached.v1 needs a business
    day to pass, a return's reminder and missed deadline days; release 0.1.0's intake stored
    API keys but published no api_key.* event."""
    refund_id = mix.in_flight[0]
    refund = mix.refunds[refund_id]
    now = datetime.now(UTC).replace(microsecond=0)
    breach = ReviewSlaBreachedV1(
        refund_id=refund_id,
        tenant=refund["tenant"],
        order_id=refund["order_id"],
        tier="general",
        deadline=now - timedelta(minutes=1),
        breached_at=now,
    )
    issued, revoked = keys["active"], keys["revoked"]
    issued_hash = hashlib.sha256(issued["key"].encode()).hexdigest()
    revoked_hash = hashlib.sha256(revoked["key"].encode()).hexdigest()
    key_issued = ApiKeyIssuedV1(
        refund_id=public_id("ak", ApiKey.create_id(issued_hash)),
        tenant=issued["tenant"],
        key_hash=issued_hash,
        prefix=issued["key"][:PREFIX_LENGTH],
        actor="cli:ops",
        issued_at=now,
    )
    key_revoked = ApiKeyRevokedV1(
        refund_id=public_id("ak", ApiKey.create_id(revoked_hash)),
        tenant=revoked["tenant"],
        actor="cli:ops",
        revoked_at=now,
    )
    return {
        breach.TYPE: _envelope(breach, "review", 900_001),
        key_issued.TYPE: _envelope(key_issued, "intake", 900_002),
        key_revoked.TYPE: _envelope(key_revoked, "intake", 900_003),
        **_return_deadlines(mix),
    }


def _return_deadlines(mix: Mix) -> dict[str, bytes]:
    """The return clock's events need calendar days to pass (ship-by is days after approval):
    written about the return the mix left awaiting shipment, as review would publish them
    when its ship-by date comes without a shipment (reminded two days before, then closed)."""
    waiting = [i for i in mix.in_flight if mix.refunds[i]["kind"] == "awaiting_return"]
    if not waiting:  # a release before returns
        return {}
    refund = mix.refunds[waiting[0]]
    ship_by = datetime.fromisoformat(refund["ship_by"])
    route = {
        "refund_id": waiting[0],
        "tenant": refund["tenant"],
        "order_id": refund["order_id"],
        "rma": refund["rma"],
    }
    reminder = ReturnShipByApproachingV1(
        **route, ship_by=ship_by, reminded_at=ship_by - timedelta(days=2)
    )
    missed = ReturnDeadlineMissedV1(
        **route,
        deadline="ship_by",
        due=ship_by,
        consequence="closed",
        rule="return.ship_by_missed",
        missed_at=ship_by,
    )
    return {
        reminder.TYPE: _envelope(reminder, "review", 900_004, reminder.reminded_at),
        missed.TYPE: _envelope(missed, "review", 900_005, missed.missed_at),
    }


def write_samples(
    folder: Path, release: str, captured: dict[str, bytes], written: dict[str, bytes], mix: Mix
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "MANIFEST.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for event_type in sorted(EVENT_TYPES):
        path = folder / f"{event_type}.json"
        if path.exists():  # the first version's sample stays as it was
            continue
        origin = "captured from the stack"
        value = captured.get(event_type)
        if value is None and event_type in written:
            value, origin = written[event_type], "written from the model"
        if value is None:
            log(f"no sample of {event_type}: the mix does not produce it")
            continue
        sample = json.loads(value)
        path.write_text(json.dumps(sample, indent=2, ensure_ascii=False) + "\n")
        index[event_type] = {
            "release": release,
            "origin": origin,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "refund_kind": mix.refunds.get(sample["subject"], {}).get("kind"),
            "keystore": f"tests/fixtures/stores/{release}/keystore.sqlite",
        }
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")


def log(message: str) -> None:
    print(f"[freeze {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)
