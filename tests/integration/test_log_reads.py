"""Nothing reads more as history grows: followers, read models and the ledger read only what is
new since their position, on real PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic, register_topic

from shared.application import ServiceApplication
from shared.follower import SAVE_SECONDS, TAIL, LogFollower
from shared.ledger import Ledger
from shared.readmodel import ReadModel, sortable
from shared.signing import Signer, dev_seed
from shared.store import store_env
from tests.support.stores import settings_on

NOISE = 3000  # events no follower here cares about
OLD_TOPIC = "old.module:Wanted"  # where Wanted lived in an earlier release


class Wanted(Aggregate):
    def __init__(self, text: str) -> None:
        self.text = text

    @event("Retitled")
    def retitle(self, text: str) -> None:
        self.text = text


class Noise(Aggregate):
    pass


register_topic(OLD_TOPIC, Wanted)


class Probe(ServiceApplication):
    name = "Probe"


class WantedIndex(ReadModel):
    name = "wanted_index"
    schema = "id TEXT PRIMARY KEY, created_at TEXT NOT NULL, version BIGINT NOT NULL"
    columns = ("id", "created_at", "version")
    changing = ("version",)
    time_column = "created_at"
    topic_marker = ":Wanted."

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        return (str(aggregate.id), sortable(aggregate.created_on), aggregate.version)


class Reads:
    """Counts the rows the recorder's `select_notifications` returns, and where each began."""

    def __init__(self, app: ServiceApplication, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        self.starts: list[int | None] = []
        select = app.recorder.select_notifications

        def counted(*args: Any, **kwargs: Any) -> Any:
            found = select(*args, **kwargs)
            self.rows += len(found)
            self.starts.append(kwargs.get("start", args[0] if args else None))
            return found

        monkeypatch.setattr(app.recorder, "select_notifications", counted)

    def reset(self) -> None:
        self.rows = 0
        self.starts = []


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Probe]:
    application = Probe(env=store_env(settings_on(request, tmp_path, "probe"), "probe"))
    yield application
    application.close()


def _noise(app: Probe, count: int = NOISE) -> int:
    for start in range(0, count, 500):
        app.save(*[Noise() for _ in range(min(500, count - start))])
    return int(app.recorder.max_notification_id() or 0)


def test_a_read_model_reads_at_most_a_tail_of_the_events_it_does_not_keep(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look reads the log's tail (TAIL events) in one query and chooses itself; a backlog
    of unwanted events behind it (3,000 here) is passed over in SQL, never read."""
    index = WantedIndex(app)
    app.save(Wanted("first"))
    assert index.catch_up() == 1
    end = _noise(app)
    reads = Reads(app, monkeypatch)
    assert index.catch_up() == 0
    assert reads.rows == TAIL < NOISE
    assert app.positions.load(index.name) == end  # past the noise, although none was kept
    reads.reset()
    assert index.catch_up() == 0
    assert reads.rows == 0 and reads.starts == [end]  # nothing new: one look after the end
    app.save(Wanted("second"), Noise())
    assert index.catch_up() == 1
    # The tail (both new events, in one query), nothing before the end it had reached.
    assert reads.rows == 2 and all(start is not None and start >= end for start in reads.starts)
    rows, _ = index.fetch({})
    assert len(rows) == 2


def test_a_read_model_keeps_events_stored_under_an_old_topic(app: Probe) -> None:
    """An aggregate moved to another module keeps its stored topics; the marker finds both."""
    moved = Wanted("moved long ago")
    mapper = app.mapper
    stored = [mapper.to_stored_event(event) for event in moved.collect_events()]
    current = get_topic(Wanted)
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=s.originator_id,
                originator_version=s.originator_version,
                topic=s.topic.replace(current, OLD_TOPIC),
                state=s.state,
            )
            for s in stored
        ]
    )
    _noise(app, 10)
    index = WantedIndex(app)
    assert index.catch_up() == 1
    assert [row[0] for row in index.fetch({})[0]] == [str(moved.id)]


def test_a_rebuild_reads_each_wanted_event_once_and_reports_every_position(app: Probe) -> None:
    wanted = [Wanted(f"w{n}") for n in range(1200)]  # more than a batch
    app.save(*wanted[:600])
    end = _noise(app, 700)
    app.save(*wanted[600:])
    end = int(app.recorder.max_notification_id() or 0)
    index = WantedIndex(app)
    advanced: list[int] = []
    assert index.rebuild(advanced.append) == len(wanted)
    assert sum(advanced) == end
    assert len(index.all_rows()) == len(wanted)


async def test_a_follower_moves_past_a_backlog_of_other_topics_without_reading_it(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = LogFollower(app, "probe", topics=[get_topic(Wanted.Created)])
    now = [1000.0]
    follower.clock = lambda: now[0]
    await follower.load()
    app.save(Wanted("first"))
    batch = await follower.next_batch(wait=0)
    assert len(batch) == 1
    await follower.advance(batch[-1].position)
    end = _noise(app)
    reads = Reads(app, monkeypatch)
    now[0] += SAVE_SECONDS
    assert await follower.next_batch(wait=0) == []
    assert reads.rows == TAIL < NOISE  # the tail; the rest was passed over in SQL
    assert follower.position == end
    assert app.positions.load("probe") == end  # saved: a restart does not scan them again
    reads.reset()
    assert await follower.next_batch(wait=0) == []
    assert reads.starts == []  # nothing wanted rang since the look that found nothing
    app.appended.ring()  # about anything (the log watch's ring: another process appended)
    assert await follower.next_batch(wait=0) == []
    assert reads.rows == 0 and reads.starts == [end]
    app.save(Noise(), Wanted("second"))
    batch = await follower.next_batch(wait=0)
    assert [item.event.text for item in batch] == ["second"]
    assert all(start is not None and start >= end for start in reads.starts)


def _saves_of(app: Probe, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The positions saved from now on, in order (they are still saved)."""
    saved: list[int] = []
    save = app.positions.save

    def counting(name: str, position: int) -> None:
        saved.append(position)
        save(name, position)

    monkeypatch.setattr(app.positions, "save", counting)
    return saved


async def test_a_follower_saves_its_moves_past_unwanted_events_at_most_once_a_second(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looks that each pass over unwanted events were a write each; the first is saved at
    once, the next ones (a busy process) once the interval has passed, by any later look.
    Unwanted appends of this process wake no follower: here each look follows a ring about
    anything, as the log watch rings for other processes' appends."""
    follower = LogFollower(app, "probe", topics=[get_topic(Wanted.Created)])
    await follower.load()
    saved = _saves_of(app, monkeypatch)
    now = [1000.0]
    follower.clock = lambda: now[0]
    first = _noise(app, 5)
    assert await follower.next_batch(wait=0) == []
    assert saved == [first]
    for _ in range(3):
        end = _noise(app, 5)
        app.appended.ring()
        assert await follower.next_batch(wait=0) == []
        assert follower.position == end
    assert saved == [first]  # within the interval: in memory only
    now[0] += SAVE_SECONDS
    app.appended.ring()
    assert await follower.next_batch(wait=0) == []  # nothing new: the look saves what it passed
    assert saved == [first, end]
    assert app.positions.load("probe") == end
    # Rewound (a broker that lost its data): a pending move must not be saved after it.
    for _ in range(2):
        _noise(app, 5)
        app.appended.ring()
        assert await follower.next_batch(wait=0) == []
    await follower.rewind()
    now[0] += SAVE_SECONDS
    follower.position = int(app.recorder.max_notification_id() or 0)  # nothing new to read
    assert await follower.next_batch(wait=0) == []
    assert app.positions.load("probe") == 0


async def test_a_follower_saves_the_batches_it_handled_at_most_once_a_second(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy relay advanced (a write and a thread hop) after every batch. The first advance
    after a quiet spell is saved at once, later ones once the interval has passed (by the next
    advance or look), the last by `flush` when the follower stops; a follower started after a
    crash goes on from the last save, so it reads again only what came after it."""
    follower = LogFollower(app, "relay:probe", topics=[get_topic(Wanted.Created)])
    await follower.load()
    saved = _saves_of(app, monkeypatch)
    now = [1000.0]
    follower.clock = lambda: now[0]
    handled: list[int] = []
    for _ in range(4):
        app.save(Wanted("x"))
        batch = await follower.next_batch(wait=0)
        assert len(batch) == 1
        handled.append(batch[0].position)
        await follower.advance(batch[0].position)
    assert follower.position == handled[-1]
    assert saved == [handled[0]]  # the first at once; the next three in memory only
    assert app.positions.load("relay:probe") == handled[0]

    # A crash now: a new follower reads again what came after the last save, nothing before.
    restarted = LogFollower(app, "relay:probe", topics=[get_topic(Wanted.Created)])
    await restarted.load()
    again = await restarted.next_batch(wait=0)
    assert [e.position for e in again] == handled[1:]

    now[0] += SAVE_SECONDS
    assert await follower.next_batch(wait=0) == []  # nothing new: the look saves the move
    assert saved == [handled[0], handled[-1]]
    app.save(Wanted("y"))
    (last,) = await follower.next_batch(wait=0)
    await follower.advance(last.position)
    assert saved[-1] == handled[-1]  # within the interval again
    await follower.flush()  # stopping: saved now
    assert saved[-1] == last.position
    assert app.positions.load("relay:probe") == last.position
    await follower.flush()  # nothing moved since: no write
    assert saved.count(last.position) == 1


async def test_an_in_memory_follower_moves_on_without_saving(app: Probe) -> None:
    """A follower never loaded (e.g. payout's poller, which re-reads on restart) saves nothing."""
    follower = LogFollower(app, "memory", topics=[get_topic(Wanted.Created)])
    end = _noise(app, 20)
    assert await follower.next_batch(wait=0) == []
    assert follower.position == end
    assert app.positions.load("memory") == 0


def test_the_ledger_reads_a_refunds_events_not_the_history_between(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(app, signer=Signer(dev_seed("probe")))
    app.save(Wanted("early"))
    _noise(app)
    app.save(Wanted("late"))
    ledger.seal()
    positions = [1, int(app.recorder.max_notification_id() or 0)]
    reads = Reads(app, monkeypatch)
    stored = ledger.stored(positions)
    assert sorted(stored) == positions
    assert reads.rows == 2


def test_the_ledger_asks_its_earlier_entries_for_a_refund_only_past_a_creation_event(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(app, signer=Signer(dev_seed("probe")))
    asked: list[str] = []
    look_up = ledger._known_correlation

    def counted(originator: str, cursor: Any, memo: dict[str, str | None]) -> str | None:
        asked.append(originator)
        return look_up(originator, cursor, memo)

    monkeypatch.setattr(ledger, "_known_correlation", counted)
    wanted = Wanted("first")  # names no refund, and is stored outside any stamp's refund
    app.save(wanted)
    ledger.seal()
    assert asked == []  # a new aggregate has no earlier entries to ask
    wanted.retitle("second")
    app.save(wanted)
    ledger.seal()
    assert asked == [str(wanted.id)]


def test_the_ledger_head_counts_on_from_its_last_checkpoint(app: Probe) -> None:
    ledger = Ledger(app, signer=Signer(dev_seed("probe")))
    _noise(app, 30)
    first = ledger.checkpoint()
    assert first is not None and first.size == 30
    _noise(app, 12)
    second = ledger.checkpoint()
    assert second is not None and second.size == 42
    assert ledger.head() == (42, second.position, second.head)
    assert len(list(ledger.all_entries())) == 42
    assert uuid.UUID(ledger.entries(limit=1)[0].originator_id)
