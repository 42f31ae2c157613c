"""Recompute a service's ledger from its stored events and say precisely what does not match.

Findings, by kind:
- `altered`: the event at a sealed position no longer has its sealed bytes;
- `deleted`: a sealed position holds no event any more;
- `inserted`: an event sits at a position inside the sealed range that was never sealed;
- `reordered`: a sealed event now sits at another position;
- `ledger_rewritten`: a ledger entry's chain hash does not follow from the events;
- `checkpoint_mismatch`: the events no longer hash to a signed checkpoint's head;
- `bad_signature` / `checkpoint_missing`: a checkpoint is forged, or a published one is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from eventsourcing.persistence import Notification

from shared.ledger import BATCH, GENESIS, Checkpoint, Entry, Ledger, chained, event_type, leaf_of
from shared.signing import key_id, verify_signature


@dataclass(frozen=True)
class Finding:
    kind: str
    position: int | None
    detail: str


@dataclass
class Report:
    service: str
    events: int = 0
    sealed: int = 0
    unsealed: int = 0
    checkpoints: int = 0
    verified_checkpoints: int = 0
    signed_through: int = 0  # the log position the last verified checkpoint covers
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, position: int | None, detail: str) -> None:
        self.findings.append(Finding(kind, position, detail))


def verify_ledger(
    ledger: Ledger, public_key: str | None, published: Iterable[Checkpoint] = ()
) -> Report:
    """Check `ledger` against the events stored now, its checkpoints and `published` copies.

    Without `public_key` the checkpoints' signatures cannot be checked; that is a finding.
    """
    report = Report(ledger.service)
    entries = list(ledger.all_entries())
    report.sealed = len(entries)
    recomputed = _compare_events(ledger, entries, report)
    _check_chain(entries, recomputed, report)
    checkpoints = ledger.checkpoints()
    report.checkpoints = len(checkpoints)
    if public_key is None and checkpoints:
        report.add("bad_signature", None, "no public key given: signatures were not checked")
    missing = _missing_published(checkpoints, published, report)
    heads = _heads_from_events(entries, recomputed)
    _check_checkpoints(heads, sorted([*checkpoints, *missing], key=_size), public_key, report)
    return report


def _size(checkpoint: Checkpoint) -> int:
    return checkpoint.size


def _events(ledger: Ledger) -> Iterator[Notification]:
    start = 1
    while batch := ledger.app.recorder.select_notifications(start=start, limit=BATCH):
        yield from batch
        start = batch[-1].id + 1


def _compare_events(ledger: Ledger, entries: list[Entry], report: Report) -> dict[int, bytes]:
    """Match each stored event with its sealed entry; the intact events' canonical bytes."""
    by_position = {entry.position: entry for entry in entries}
    sealed_at = {entry.leaf: entry.position for entry in entries}
    head = entries[-1].position if entries else 0
    intact: dict[int, bytes] = {}
    moved_from: set[int] = set()
    seen: set[int] = set()
    for notification in _events(ledger):
        report.events += 1
        position = notification.id
        if position > head:
            report.unsealed += 1
            continue
        seen.add(position)
        data, leaf = leaf_of(notification)
        entry = by_position.get(position)
        if entry is not None and leaf == entry.leaf:
            intact[position] = data
            continue
        what = (
            f"{event_type(notification.topic)} of {notification.originator_id} "
            f"v{notification.originator_version}"
        )
        elsewhere = sealed_at.get(leaf)
        if elsewhere is not None:
            moved_from.add(elsewhere)
            report.add("reordered", position, f"{what} was sealed at position {elsewhere}")
        elif entry is None:
            report.add("inserted", position, f"{what} was never sealed; it appeared later")
        else:
            report.add(
                "altered",
                position,
                f"{what}: stored bytes differ from the sealed hash of {entry.type} "
                f"of {entry.originator_id} v{entry.originator_version}",
            )
    for entry in entries:
        if entry.position not in seen and entry.position not in moved_from:
            report.add(
                "deleted",
                entry.position,
                f"{entry.type} of {entry.originator_id} v{entry.originator_version} is gone",
            )
    return intact


def _check_chain(entries: list[Entry], intact: dict[int, bytes], report: Report) -> None:
    """Each intact event's chain hash must follow from the entry before it."""
    previous = GENESIS
    for entry in entries:
        data = intact.get(entry.position)
        if data is not None and chained(previous, data) != entry.chain:
            report.add(
                "ledger_rewritten",
                entry.position,
                "the ledger's chain hash does not follow from the stored events",
            )
        previous = entry.chain  # carry on from what the ledger says, to localise further faults


def _check_checkpoints(
    heads: list[str | None],
    checkpoints: list[Checkpoint],
    public_key: str | None,
    report: Report,
) -> None:
    previous_position = 0
    for checkpoint in checkpoints:
        if public_key is not None and not _signed_by(public_key, checkpoint):
            report.add(
                "bad_signature",
                checkpoint.position,
                f"checkpoint of size {checkpoint.size} is not signed by {key_id(public_key)}",
            )
            continue
        head = heads[checkpoint.size - 1] if 0 < checkpoint.size <= len(heads) else None
        if head != checkpoint.head:
            report.add(
                "checkpoint_mismatch",
                checkpoint.position,
                f"the events up to position {checkpoint.position} no longer hash to the head "
                f"signed at {checkpoint.at} (size {checkpoint.size}); the change lies between "
                f"positions {previous_position + 1} and {checkpoint.position}",
            )
        elif public_key is not None:
            report.verified_checkpoints += 1
            report.signed_through = max(report.signed_through, checkpoint.position)
        previous_position = checkpoint.position


def _signed_by(public_key: str, checkpoint: Checkpoint) -> bool:
    return checkpoint.key_id == key_id(public_key) and verify_signature(
        public_key, checkpoint.payload(), checkpoint.signature
    )


def _heads_from_events(entries: list[Entry], intact: dict[int, bytes]) -> list[str | None]:
    """The chain recomputed from the stored events alone; None from the first gap on."""
    heads: list[str | None] = []
    current: str | None = GENESIS
    for entry in entries:
        data = intact.get(entry.position)
        current = chained(current, data) if current is not None and data is not None else None
        heads.append(current)
    return heads


def _missing_published(
    stored: list[Checkpoint], published: Iterable[Checkpoint], report: Report
) -> list[Checkpoint]:
    """Published copies the store no longer holds as published (they are checked too)."""
    by_size = {checkpoint.size: checkpoint for checkpoint in stored}
    missing = []
    for copy in published:
        if copy.service != report.service:
            continue
        mine = by_size.get(copy.size)
        if mine is None or (mine.head, mine.signature) != (copy.head, copy.signature):
            report.add(
                "checkpoint_missing",
                copy.position,
                f"the published checkpoint of size {copy.size} ({copy.at}) is not in the store "
                "as published",
            )
            missing.append(copy)
    return missing
