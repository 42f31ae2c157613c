"""Followers read this process's own appends from memory (shared/recent_log.py) and still see
the log exactly as the store holds it: every event once, in order, when replicas' appends
interleave with ours, on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.follower import pages_after
from shared.ledger import Ledger
from shared.ledger_verify import verify_ledger
from shared.recent_log import store_read
from shared.signing import Signer, dev_seed
from shared.store import store_env
from tests.support.stores import settings_on


class Replica(ServiceApplication):
    name = "Replica"


class Note(Aggregate):
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two writers on one store, and a third process that has stored nothing (its reads are
    all the store's: what the log holds)."""
    env = store_env(settings_on(request, tmp_path, "replica"), "replica")
    apps = [Replica(env=env) for _ in range(3)]
    yield apps
    for app in apps:
        app.close()


def _follow(app: Replica, limit: int) -> list[tuple[int, str, bytes]]:
    """Every event after position 0 as a follower reads them, page by page."""
    seen: list[tuple[int, str, bytes]] = []
    position = 0
    while pages := list(pages_after(app.recorder, position, limit=limit)):
        for page in pages:
            seen += [(n.id, n.topic, n.state) for n in page.notifications]
            position = page.reached
    return seen


def test_a_follower_reads_interleaved_appends_once_in_order(replicas: list[Replica]) -> None:
    ours, theirs, bystander = replicas
    for n in range(40):  # runs of ours broken by the other replica's appends
        (theirs if n % 5 == 3 else ours).save(Note(f"note {n}"))
    log = _follow(bystander, limit=7)
    assert len(log) == 40 and [p for p, _, _ in log] == sorted({p for p, _, _ in log})
    assert _follow(ours, limit=7) == log
    assert _follow(theirs, limit=3) == log


def test_a_read_is_answered_from_memory_only_up_to_the_logs_end(
    replicas: list[Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's own latest appends come from memory, the same as the store holds them;
    once another replica appended after them, the read is the store's (read-your-writes)."""
    ours, theirs, bystander = replicas
    ours.save(Note("one"), Note("two"))
    from_store: list[int | None] = []
    select = store_read(ours.recorder)

    def counted(*args: Any, **kwargs: Any) -> Any:
        from_store.append(kwargs.get("start", args[0] if args else None))
        return select(*args, **kwargs)

    monkeypatch.setattr(ours.recorder.select_notifications, "from_store", counted)
    mine = ours.recorder.select_notifications(start=0, limit=10, inclusive_of_start=False)
    stored = bystander.recorder.select_notifications(start=0, limit=10, inclusive_of_start=False)
    assert mine == stored and len(mine) == 2 and from_store == []
    theirs.save(Note("three"))
    after = ours.recorder.select_notifications(start=0, limit=10, inclusive_of_start=False)
    assert [n.id for n in after] == [*[n.id for n in mine], mine[-1].id + 1]
    assert from_store == [0]


def test_ledgers_sealing_while_replicas_write_chain_every_event(replicas: list[Replica]) -> None:
    """Each writer's ledger seals from its own memory and the store by turns while both write;
    the sealed chain verifies against the stored events."""
    writers = replicas[:2]
    ledgers = [Ledger(app, signer=Signer(dev_seed("replica"))) for app in writers]
    stop = threading.Event()
    errors: list[BaseException] = []

    def seal(ledger: Ledger) -> None:
        while not stop.is_set():
            try:
                ledger.seal()
            except BaseException as error:
                errors.append(error)
                return

    def write(app: Replica, name: str) -> None:
        for n in range(120):
            app.save(Note(f"{name} {n}"))

    sealers = [threading.Thread(target=seal, args=(ledger,)) for ledger in ledgers]
    writing = [threading.Thread(target=write, args=(app, f"w{i}")) for i, app in enumerate(writers)]
    for thread in [*sealers, *writing]:
        thread.start()
    for thread in writing:
        thread.join(timeout=60)
    stop.set()
    for thread in sealers:
        thread.join(timeout=30)
    assert errors == []
    ledgers[0].seal()
    report = verify_ledger(ledgers[0], Signer(dev_seed("replica")).public_key)
    assert report.ok, report.findings
    assert report.sealed == 240
