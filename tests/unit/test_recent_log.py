"""A follower's read is answered from this process's own recent appends only when the answer is
certain: a contiguous run from the first id asked for; anything else goes to the store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from shared.recent_log import ReadThrough, RecentAppends, store_read


def _notification(n: int, topic: str = "t:A.Created") -> Notification:
    return Notification(
        id=n, originator_id=uuid.uuid4(), originator_version=1, topic=topic, state=b"{}"
    )


class Store:
    """The store's read, recording each call (it answers with ids start.. as asked)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        self.calls.append({"start": start, "limit": limit, "stop": stop, "topics": tuple(topics)})
        return [_notification(1000)]


def _reading(
    ids: list[int], kept: int = 100, head: int | None = None
) -> tuple[ReadThrough, Store, RecentAppends]:
    """Memory holding `ids`, over a log whose last id is `head` (by default the last of ids)."""
    recent = RecentAppends(kept)
    recent.stored([_notification(n) for n in ids])
    store = Store()
    end = max(ids) if head is None else head
    return ReadThrough(store, recent, lambda: end), store, recent


def test_a_contiguous_run_after_the_position_is_answered_without_the_store() -> None:
    read, store, _ = _reading([5, 6, 7, 8])
    found = read(start=4, limit=10, inclusive_of_start=False)
    assert [n.id for n in found] == [5, 6, 7, 8]
    assert store.calls == []
    assert [n.id for n in read(start=6, limit=10)] == [6, 7, 8]  # inclusive of start
    assert [n.id for n in read(start=5, limit=2)] == [5, 6]  # at most `limit`
    assert [n.id for n in read(start=5, limit=10, stop=6)] == [5, 6]  # none above `stop`
    assert store.calls == []


def test_an_id_this_process_did_not_store_sends_the_read_to_the_store() -> None:
    """Another replica stored 7 (or PostgreSQL's sequence skipped it): memory's run would end
    at 6, short of the log's end, so the whole read is the store's; a full page or a run up
    to `stop` is the whole answer, and memory gives it."""
    read, store, _ = _reading([5, 6, 8, 9])
    assert [n.id for n in read(start=4, limit=10, inclusive_of_start=False)] == [1000]
    assert [n.id for n in read(start=6, limit=10, inclusive_of_start=False)] == [1000]
    assert [call["start"] for call in store.calls] == [4, 6]
    assert [n.id for n in read(start=4, limit=2, inclusive_of_start=False)] == [5, 6]
    assert [n.id for n in read(start=5, limit=10, stop=6)] == [5, 6]
    assert len(store.calls) == 2


def test_a_run_short_of_the_log_end_goes_to_the_store() -> None:
    """Another process appended 9 after this one's 8: a reader that just caught up is owed it."""
    read, store, _ = _reading([5, 6, 7, 8], head=9)
    assert [n.id for n in read(start=4, limit=10, inclusive_of_start=False)] == [1000]
    assert len(store.calls) == 1


def test_text_ids_are_answered_as_the_store_holds_them() -> None:
    recent = RecentAppends()
    stored = _notification(1)
    recent.stored([stored])
    read = ReadThrough(Store(), recent, lambda: 1, text_ids=True)
    [found] = read(start=0, limit=10, inclusive_of_start=False)
    assert isinstance(stored.originator_id, uuid.UUID)
    assert found.originator_id == stored.originator_id.hex  # SQLite's text: 32 hex digits


def test_the_auditors_read_is_always_the_stores() -> None:
    read, store, _ = _reading([1, 2])

    class Recorder:
        select_notifications = read

    assert [n.id for n in store_read(Recorder())(start=1, limit=10)] == [1000]
    assert len(store.calls) == 1


def test_reads_it_cannot_answer_for_certain_go_to_the_store() -> None:
    read, store, _ = _reading([5, 6, 7])
    read(start=4, limit=10, topics=["t:A.Created"], inclusive_of_start=False)  # by topics
    read(start=None, limit=10)  # from the log's beginning
    read(start=7, limit=10, inclusive_of_start=False)  # past everything kept
    read(start=1, limit=10)  # before anything kept
    assert [call["start"] for call in store.calls] == [4, None, 7, 1]


def test_only_the_latest_appends_are_kept() -> None:
    read, store, _ = _reading(list(range(1, 21)), kept=5)
    assert [n.id for n in read(start=15, limit=10, inclusive_of_start=False)] == [
        16,
        17,
        18,
        19,
        20,
    ]
    assert store.calls == []
    read(start=14, limit=10, inclusive_of_start=False)  # 15 was let go
    assert len(store.calls) == 1
