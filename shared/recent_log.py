"""This process's own recent appends, kept for the followers of its log.

Every follower of a service's log (the relay, the ledger's sealer, the read models, notify's
outboxes) reads each new event back from the store right after this process stored it: a
query, a row made into a `Notification` (its originator id parsed into a UUID) and, for most
of them, the event decoded again, once per follower. Those reads were about a tenth of each
service's CPU. The events are at hand when they are stored: `RecentAppends` keeps the last
of them, and `ReadThrough` answers a follower's read from them when it can.

It can only when the answer is certain: the events asked for start right after the
follower's position and are *contiguous* in the log, each id one more than the last. An id
this process did not store (another replica's append, an id PostgreSQL's sequence skipped
on a rollback) ends the run, and a read that would start at a missing id goes to the store.
No event can appear later below one this process stored: ids are committed in order
(SQLite has one writer; eventsourcing's PostgreSQL recorder inserts under an EXCLUSIVE table
lock), and an event is kept here only once its transaction has committed. A shorter answer
than the store would give is still a true prefix of the log: followers move their position
to the last id they were given and read on from there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import Notification

# Events kept: at 60 refunds a second about 2 s of notify's appends, far more than the
# followers, which look at least every second, ever fall behind by while they keep up.
KEPT = 2_000


@dataclass(frozen=True)
class KeptNotification(Notification):
    """A notification this process stored; followers decode it once between them
    (`StampingMapper` keeps the decoded event here: events are immutable)."""

    decoded: list[Any] = field(default_factory=list, compare=False, repr=False)


class RecentAppends:
    """The last `KEPT` events this process stored, by notification id."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_id: OrderedDict[int, KeptNotification] = OrderedDict()
        self._lock = threading.Lock()

    def stored(self, notifications: Iterable[Notification]) -> None:
        """Keep what a transaction that has committed stored."""
        with self._lock:
            for n in notifications:
                self._by_id[n.id] = KeptNotification(
                    id=n.id,
                    originator_id=n.originator_id,
                    originator_version=n.originator_version,
                    topic=n.topic,
                    state=n.state,
                )
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


Select = Callable[..., Sequence[Notification]]


class ReadThrough:
    """A recorder's `select_notifications`, answered from `RecentAppends` when it can."""

    def __init__(self, select: Select, recent: RecentAppends) -> None:
        self._select = select
        self._recent = recent

    def __call__(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        # A read by topics is the store's: a run cut short by a missing id would not say
        # how far it looked, and a caller could not tell "nothing wanted" from "not known".
        if start is not None and not topics:
            first = start if inclusive_of_start else start + 1
            run = self._recent.run_from(first, limit, stop)
            if run:
                return run
        return self._select(
            start, limit, stop=stop, topics=topics, inclusive_of_start=inclusive_of_start
        )


def decoded_once(stored: Any, decode: Callable[[Any], Any]) -> Any:
    """`decode(stored)`, made once per kept notification and shared by its followers."""
    if type(stored) is not KeptNotification:
        return decode(stored)
    memo = stored.decoded
    if not memo:
        memo.append(decode(stored))
    return memo[0]
