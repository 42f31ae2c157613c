"""Read-only looks at cached aggregates (`ServiceApplication.reading`): no copy, and no
command's load changes the aggregate under a reader."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import eventsourcing.application
import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event

from shared.application import FastRepository, ServiceApplication


class Tally(Aggregate):
    """A refund-like aggregate small enough to see every change."""

    @event("Opened")
    def __init__(self) -> None:
        self.entries: list[int] = []

    @event("Added")
    def add(self, amount: int) -> None:
        self.entries.append(amount)


class Tallies(ServiceApplication):
    name = "Tallies"


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
