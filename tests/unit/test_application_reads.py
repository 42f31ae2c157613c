"""Read-only looks at cached aggregates (`ServiceApplication.read`): no copy, and no command or
catch-up ever changes an aggregate a reader holds."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event

import shared.application
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
    """Every deep copy the repository makes of an aggregate."""
    made: list[Any] = []

    def counted(value: Any, memo: Any = None) -> Any:
        made.append(value)
        return copy.deepcopy(value, memo)

    monkeypatch.setattr(shared.application, "deepcopy", counted)
    return made


def opened(app: Tallies, *amounts: int) -> uuid.UUID:
    tally = Tally()
    for amount in amounts:
        tally.add(amount)
    app.save(tally)
    return tally.id


def test_services_get_the_copy_on_write_repository(app: Tallies) -> None:
    assert isinstance(app.repository, FastRepository)


def test_a_read_of_a_cached_aggregate_makes_no_copy(app: Tallies, copies: list[Any]) -> None:
    tally_id = opened(app, 100)
    first = app.read(tally_id)  # built from the store and cached
    again = app.read(tally_id)
    assert again is first and again.entries == [100]
    assert copies == []
    # A command still gets a copy of its own.
    for_command = app.repository.get(tally_id)
    assert for_command is not first and len(copies) == 1


def test_a_command_after_a_read_stores_the_next_version_and_leaves_the_reader_alone(
    app: Tallies,
) -> None:
    tally_id = opened(app, 100)
    seen = app.read(tally_id)
    assert seen.version == 2

    app.update(tally_id, lambda tally: tally.add(250))

    # The reader's object is as it was: the command decided on a copy.
    assert seen.version == 2 and seen.entries == [100]
    stored = [e.originator_version for e in app.repository.event_store.get(tally_id)]
    assert stored == [1, 2, 3]
    now = app.read(tally_id)
    assert now.version == 3 and now.entries == [100, 250]
    # Catching up replaced the cached aggregate instead of changing it under the reader.
    assert now is not seen and seen.entries == [100]
    # The next command decides on the caught-up state and stores version 4, not 3 again.
    app.update(tally_id, lambda tally: tally.add(7))
    assert app.read(tally_id).entries == [100, 250, 7]
    assert [e.originator_version for e in app.repository.event_store.get(tally_id)][-1] == 4


def test_a_command_catching_up_does_not_change_what_a_reader_holds(
    app: Tallies, copies: list[Any]
) -> None:
    tally_id = opened(app, 1)
    seen = app.read(tally_id)
    # Another writer (a replica, another thread) stores an event behind the cache's back.
    other = Tallies(env={})  # no cache: it replays from the store
    other.recorder = other.events.recorder = app.recorder  # one store
    fresh = other.repository.get(tally_id)
    fresh.add(2)
    other.save(fresh)

    loaded = app.repository.get(tally_id)  # fast-forwards over the other's event
    assert loaded.entries == [1, 2] and loaded.version == 3
    assert seen.entries == [1] and seen.version == 2
    # One copy to catch up (then cached), one for the command's own.
    assert len(copies) == 2
    assert app.read(tally_id).entries == [1, 2] and len(copies) == 2


def test_a_read_of_an_unknown_aggregate_is_not_found(app: Tallies) -> None:
    from eventsourcing.application import AggregateNotFoundError

    with pytest.raises(AggregateNotFoundError):
        app.read(uuid.uuid4())
