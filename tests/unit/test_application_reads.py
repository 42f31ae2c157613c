"""Read-only looks at cached aggregates (`ServiceApplication.reading`): no copy, and no
command's load changes the aggregate under a reader. What a reaction stores is cached at its
new version (the next load fast-forwards from there), and another writer's events still reach
every load."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import eventsourcing.application
import pytest
from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import EventStore

from shared.application import FastRepository, ServiceApplication
from shared.contracts import CloudEvent, IntegrationEvent
from tests.support.notify import cloud, requested


class Tally(Aggregate):
    """A refund-like aggregate small enough to see every change."""

    @event("Opened")
    def __init__(self, id: uuid.UUID | None = None) -> None:
        self.entries: list[int] = []

    @staticmethod
    def create_id(id: uuid.UUID | None = None) -> uuid.UUID:
        return id or uuid.uuid4()

    @event("Added")
    def add(self, amount: int) -> None:
        self.entries.append(amount)


class Tallies(ServiceApplication):
    """A message adds its position to the tally named by its refund (opening it first)."""

    name = "Tallies"

    def react(
        self, payload: IntegrationEvent, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        tally_id = uuid.uuid5(uuid.NAMESPACE_URL, payload.refund_id)
        try:
            tally = self.repository.get(tally_id)
        except AggregateNotFoundError:
            tally = Tally(id=tally_id)
        tally.add(message.position)
        processing.collect_events(tally)


CACHED = {"AGGREGATE_CACHE_MAXSIZE": "100", "AGGREGATE_CACHE_FASTFORWARD": "y"}


@pytest.fixture
def app() -> Iterator[Tallies]:
    application = Tallies(env=CACHED)
    yield application
    application.close()


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every deep copy the repository makes of an aggregate for a load."""
    made: list[Any] = []

    def counted(value: Any, memo: Any = None) -> Any:
        made.append(value)
        return copy.deepcopy(value, memo)

    monkeypatch.setattr(eventsourcing.application, "deepcopy", counted)
    return made


def opened(app: Tallies, *amounts: int) -> uuid.UUID:
    tally = Tally()
    for amount in amounts:
        tally.add(amount)
    app.save(tally)
    return tally.id


def elsewhere(app: Tallies, tally_id: uuid.UUID, amount: int) -> None:
    """Another replica stores an event, behind this process's cache."""
    other = Tallies(env={})  # no cache: it replays from the store
    other.recorder = other.events.recorder = app.recorder  # the same store
    tally = other.repository.get(tally_id)
    tally.add(amount)
    other.save(tally)


def test_services_get_the_fast_repository(app: Tallies) -> None:
    assert isinstance(app.repository, FastRepository)


def test_a_read_of_a_cached_aggregate_makes_no_copy(app: Tallies, copies: list[Any]) -> None:
    tally_id = opened(app, 100)
    with app.reading(tally_id) as first:  # built from the store and cached
        assert first.entries == [100]
    with app.reading(tally_id) as again:
        assert again is first
    elsewhere(app, tally_id, 5)
    with app.reading(tally_id) as caught_up:  # fast-forwarded over the other's event
        assert caught_up.entries == [100, 5] and caught_up.version == 3
    assert copies == []
    # A command still gets a copy of its own.
    for_command = app.repository.get(tally_id)
    assert for_command is not caught_up and len(copies) == 1


def test_a_command_after_a_read_stores_the_next_version_and_the_cache_stays_true(
    app: Tallies,
) -> None:
    tally_id = opened(app, 100)
    with app.reading(tally_id) as seen:
        assert seen.version == 2

    app.update(tally_id, lambda tally: tally.add(250))

    stored = [e.originator_version for e in app.repository.event_store.get(tally_id)]
    assert stored == [1, 2, 3]
    with app.reading(tally_id) as now:
        assert now.version == 3 and now.entries == [100, 250]
    app.update(tally_id, lambda tally: tally.add(7))
    with app.reading(tally_id) as now:
        assert now.entries == [100, 250, 7] and now.version == 4
    assert app.repository.get(tally_id).entries == [100, 250, 7]


def test_a_commands_load_waits_until_the_reader_is_done(app: Tallies) -> None:
    tally_id = opened(app, 1)
    elsewhere(app, tally_id, 2)  # the cache gets this by fast-forward
    with app.reading(tally_id) as seen:
        seen_then = (seen.version, list(seen.entries))
        loaded: list[Any] = []
        loading = threading.Thread(target=lambda: loaded.append(app.repository.get(tally_id)))
        elsewhere(app, tally_id, 3)
        loading.start()
        loading.join(timeout=0.3)
        # The command's load would fast-forward the shared object in place: it waits.
        assert loading.is_alive() and loaded == []
        assert (seen.version, seen.entries) == seen_then
    loading.join(timeout=5)
    assert loaded[0].entries == [1, 2, 3]


def test_a_read_of_an_unknown_aggregate_is_not_found(app: Tallies) -> None:
    with pytest.raises(AggregateNotFoundError), app.reading(uuid.uuid4()):
        pass


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Every read of one aggregate's events from the store: None replays it from its first
    event, a number fast-forwards a cached one from that version."""
    made: list[int | None] = []
    real = EventStore.get

    def counted(self: EventStore, originator_id: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("gt"))
        return real(self, originator_id, *args, **kwargs)

    monkeypatch.setattr(EventStore, "get", counted)
    return made


def _about(refund_id: str, position: int) -> CloudEvent:
    """A message at `position` about `refund_id` (its kind does not matter to Tallies)."""
    return cloud(requested(refund_id), position)


@pytest.fixture
def reacting(tmp_path: Path) -> Iterator[Tallies]:
    """Tallies on a store that tracks the messages applied (SQLite), cache as above."""
    application = Tallies(
        env={
            **CACHED,
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "tallies.sqlite"),
            "SINGLE_ROW_TRACKING": "n",  # as shared.store.store_env
        }
    )
    yield application
    application.close()


def test_what_a_reaction_stored_is_cached_at_its_new_version(
    reacting: Tallies, loads: list[int | None]
) -> None:
    app = reacting
    refund = f"rf_{uuid.uuid4().hex}"
    tally_id = uuid.uuid5(uuid.NAMESPACE_URL, refund)
    assert app.handle(_about(refund, 1))
    assert loads == [None]  # the first message: not there yet
    assert app.handle(_about(refund, 2))
    # The second one's load fast-forwarded from the version the first stored, no replay.
    assert loads == [None, 2]
    assert app.handle(_about(refund, 3))
    assert loads == [None, 2, 3]
    with app.reading(tally_id) as tally:
        assert tally.entries == [1, 2, 3] and tally.version == 4


def test_a_reaction_after_another_writer_decides_on_the_latest_version(reacting: Tallies) -> None:
    app = reacting
    refund = f"rf_{uuid.uuid4().hex}"
    tally_id = uuid.uuid5(uuid.NAMESPACE_URL, refund)
    assert app.handle(_about(refund, 1))
    elsewhere(app, tally_id, 50)  # behind the version this process cached
    assert app.handle(_about(refund, 2))
    stored = [e.originator_version for e in app.repository.event_store.get(tally_id)]
    assert stored == [1, 2, 3, 4]
    assert app.repository.get(tally_id).entries == [1, 50, 2]
