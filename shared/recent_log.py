"""This process's own recent appends, kept for the followers of its log.

Every follower of a service's log (the relay, the ledger's sealer, the read models, notify's
outboxes) reads each new event back from the store right after this process stored it: up to
a hundred rows selected with their states, each made into a `Notification` (its originator id
parsed into a UUID), once per follower. The events are at hand when they are stored:
`RecentAppends` keeps the last of them, and `ReadThrough` answers a follower's read from them
when the answer is certain:

- the events asked for start right after the follower's position and are contiguous in the
  log, each id one more than the last: an id this process did not store (another replica's
  append, another application on the same store, an id PostgreSQL's sequence skipped on a
  rollback) ends the run, and a read that would start at a missing id goes to the store;
- and the run is the whole answer: it holds `limit` events, reaches `stop`, or reaches the
  log's end as it is now (one look at the log's head, an index's last entry, instead of the
  rows). A shorter run would be a true prefix of the log, but a reader that just caught up
  is entitled to everything stored before it looked (read-your-writes, e.g. a list after a
  create), so it goes to the store.

No event can appear later below one this process stored: ids are committed in order (SQLite
has one writer; eventsourcing's PostgreSQL recorder inserts under an EXCLUSIVE table lock), and
an event is kept here only once its transaction has committed.

Decoded events are not shared between followers: domain code keeps dicts and lists of an
event's fields in the aggregates it builds, and one follower's aggregate changing them in
place would change what another follower was given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

# Events kept: at 60 refunds a second about 2 s of notify's appends, far more than the
# followers, which look at least every second, ever fall behind by while they keep up.
KEPT = 2_000

Select = Callable[..., Sequence[Notification]]


class RecentAppends:
    """The last `KEPT` events this process stored, by notification id."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_id: OrderedDict[int, Notification] = OrderedDict()
        self._lock = threading.Lock()

    def stored(self, notifications: Iterable[Notification]) -> None:
        """Keep what a transaction that has committed stored (notifications are frozen)."""
        with self._lock:
            for notification in notifications:
                self._by_id[notification.id] = notification
            while len(self._by_id) > self._kept:
                self._by_id.popitem(last=False)

    def run_from(self, first: int, limit: int, stop: int | None) -> list[Notification]:
        """The kept events from id `first` on while each id follows the last (at most
        `limit`, none above `stop`); empty when `first` is not kept."""
        run: list[Notification] = []
        with self._lock:
            by_id = self._by_id
            position = first
            while len(run) < limit and (stop is None or position <= stop):
                kept = by_id.get(position)
                if kept is None:
                    break
                run.append(kept)
                position += 1
        return run


class ReadThrough:
    """A recorder's `select_notifications`, answered from `RecentAppends` when it can.

    `head` is the log's last notification id now. `text_ids`: the recorder reads originator
    ids as the text SQLite stores (shared/readmodel.py's), and its readers key what they keep
    by them: memory's answer has them as that text too.
    """

    def __init__(
        self,
        select: Select,
        recent: RecentAppends,
        head: Callable[[], int | None],
        *,
        text_ids: bool = False,
    ) -> None:
        self.from_store = select  # the store's own answer, never memory's (see `store_read`)
        self._recent = recent
        self._head = head
        self._text_ids = text_ids

    def __call__(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        # A read by topics is the store's: memory could not tell "nothing wanted" from "not
        # known" past the end of its run.
        if start is not None and not topics:
            first = start if inclusive_of_start else start + 1
            run = self._recent.run_from(first, limit, stop)
            if run and self._whole(run, limit, stop):
                return [_with_text_id(n) for n in run] if self._text_ids else run
        return self.from_store(
            start, limit, stop=stop, topics=topics, inclusive_of_start=inclusive_of_start
        )

    def _whole(self, run: list[Notification], limit: int, stop: int | None) -> bool:
        last = run[-1].id
        if len(run) == limit or (stop is not None and last >= stop):
            return True
        return last >= int(self._head() or 0)


def _with_text_id(kept: Notification) -> Notification:
    originator_id = kept.originator_id
    return Notification(
        id=kept.id,
        # As eventsourcing's SQLite recorder stores it: 32 hex digits.
        originator_id=originator_id.hex if isinstance(originator_id, UUID) else originator_id,
        originator_version=kept.originator_version,
        topic=kept.topic,
        state=kept.state,
    )


def store_read(recorder: Any) -> Select:
    """`recorder.select_notifications` as the store answers it, never from this process's
    memory: the auditor's checks compare the ledger with what the store holds *now* (an
    event deleted or altered there must show, even one this process stored itself)."""
    select = recorder.select_notifications
    found: Select = getattr(select, "from_store", select)
    return found
