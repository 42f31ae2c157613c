"""A follower's read is answered from this process's own recent appends only when the answer is
certain: a contiguous run from the first id asked for; anything else goes to the store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from shared.recent_log import KeptNotification, ReadThrough, RecentAppends, decoded_once


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


def _reading(ids: list[int], kept: int = 100) -> tuple[ReadThrough, Store, RecentAppends]:
    recent = RecentAppends(kept)
    recent.stored([_notification(n) for n in ids])
    store = Store()
    return ReadThrough(store, recent), store, recent


def test_a_contiguous_run_after_the_position_is_answered_without_the_store() -> None:
    read, store, _ = _reading([5, 6, 7, 8])
    found = read(start=4, limit=10, inclusive_of_start=False)
    assert [n.id for n in found] == [5, 6, 7, 8]
    assert all(isinstance(n, KeptNotification) for n in found)
    assert store.calls == []
    assert [n.id for n in read(start=6, limit=10)] == [6, 7, 8]  # inclusive of start
    assert [n.id for n in read(start=5, limit=2)] == [5, 6]  # at most `limit`
    assert [n.id for n in read(start=5, limit=10, stop=6)] == [5, 6]  # none above `stop`
    assert store.calls == []


def test_an_id_this_process_did_not_store_ends_the_run() -> None:
    """Another replica stored 7 (or PostgreSQL's sequence skipped it): the answer stops at 6,
    and the read from 7 on is the store's."""
    read, store, _ = _reading([5, 6, 8, 9])
    assert [n.id for n in read(start=4, limit=10, inclusive_of_start=False)] == [5, 6]
    assert store.calls == []
    assert [n.id for n in read(start=6, limit=10, inclusive_of_start=False)] == [1000]
    assert store.calls == [{"start": 6, "limit": 10, "stop": None, "topics": ()}]


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


def test_a_kept_event_is_decoded_once_for_all_its_followers() -> None:
    _, _, recent = _reading([1])
    kept = recent.run_from(1, 1, None)[0]
    plain = _notification(2)
    decodes: list[int] = []

    def decode(stored: Any) -> object:
        decodes.append(stored.id)
        return object()

    first, again = decoded_once(kept, decode), decoded_once(kept, decode)
    assert first is again
    decoded_once(plain, decode)
    decoded_once(plain, decode)
    assert decodes == [1, 2, 2]
