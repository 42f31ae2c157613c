"""What a ledger holds: each stored event's canonical bytes and hashes, its entry (who, why,
about which refund) and the signed checkpoints over the chain."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification

from shared.readmodel import values
from shared.stamping import STAMP_KEY

GENESIS = "0" * 64


ACTOR_FIELDS = ("actor", "decided_by", "by", "person", "granted_by")


# (topic, originator id, stored state) → the public refund id the event concerns, if any.
Correlate = Callable[[str, uuid.UUID, dict[str, Any]], str | None]


def refund_id_field(topic: str, originator_id: uuid.UUID, state: dict[str, Any]) -> str | None:
    """The default: the event's own `refund_id` field, when it names one."""
    return text_of(state.get("refund_id"))


def canonical(originator_id: uuid.UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The bytes an event's hash covers: its stored row, each part length-prefixed."""
    parts = [str(originator_id).encode(), str(version).encode(), topic.encode(), state]
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def leaf_of(notification: Notification) -> tuple[bytes, str]:
    data = canonical(
        notification.originator_id,
        notification.originator_version,
        notification.topic,
        notification.state,
    )
    return data, hashlib.sha256(data).hexdigest()


def chained(previous: str, data: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + data).hexdigest()


def event_type(topic: str) -> str:
    """`services.intake.domain:RefundRequest.Approved` → `RefundRequest.Approved`."""
    return topic.rpartition(":")[2]


@dataclass(frozen=True)
class Entry:
    position: int
    originator_id: str
    originator_version: int
    type: str
    leaf: str
    chain: str
    at: str
    actor: str
    via: str | None
    causation: str | None
    correlation: str | None
    event_id: str


@dataclass(frozen=True)
class Checkpoint:
    service: str
    size: int  # ledger entries covered
    position: int  # the last one's log position
    head: str  # the chain hash after it
    at: str
    key_id: str
    signature: str

    def payload(self) -> bytes:
        return signed_payload(self.service, self.size, self.position, self.head, self.at)


def signed_payload(service: str, size: int, position: int, head: str, at: str) -> bytes:
    document = {"service": service, "size": size, "position": position, "head": head, "at": at}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


ENTRY_COLUMNS = tuple(Entry.__dataclass_fields__)


CHECKPOINT_COLUMNS = ("size", "position", "head", "at", "key_id", "signature")


def data_of(notification: Notification) -> dict[str, Any]:
    """An event's stored state as JSON data (what the ledger shows), without the stamp."""
    state = stored_state(notification.state)
    state.pop(STAMP_KEY, None)
    return state


def stored_state(raw: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def actor_of(stamped: str | None, state: dict[str, Any], service: str) -> str:
    """Who acted: the request's tenant or staff person; for work this service did on its
    own (reacting, on a timer), the person or rule the event names, if it names one."""
    if stamped and not stamped.startswith("system:"):
        return stamped
    named = next(
        (text_of(state.get(name)) for name in ACTOR_FIELDS if text_of(state.get(name))), None
    )
    if named is not None:
        return named if ":" in named else f"staff:{named}"  # bare names are staff persons
    return stamped or f"system:{service}"


def stamp_of(state: dict[str, Any]) -> dict[str, str]:
    audit = state.get(STAMP_KEY)
    return audit if isinstance(audit, dict) else {}


def astuple_shallow(entry: Entry) -> tuple[Any, ...]:
    """The entry's values in column order (dataclasses.astuple deep-copies: 3x slower)."""
    return tuple(getattr(entry, column) for column in ENTRY_COLUMNS)


def text_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def stored_time(state: dict[str, Any]) -> str:
    """The event's own time, as stored by eventsourcing's transcoder."""
    stamp = state.get("timestamp")
    if isinstance(stamp, dict) and isinstance(stamp.get("_data_"), str):
        try:  # fixed width, so that text order is time order
            moment = datetime.fromisoformat(stamp["_data_"]).astimezone(UTC)
        except ValueError:
            return str(stamp["_data_"])
        return moment.isoformat(timespec="microseconds")
    return ""


def entry_from_row(row: Any) -> Entry:
    return Entry(*values(row))


def checkpoint_from_row(service: str, row: Any) -> Checkpoint:
    size, position, head, at, key, signature = values(row)
    return Checkpoint(
        service, int(size), int(position), str(head), str(at), str(key), str(signature)
    )
