"""Following notify's own log for some kinds of event only: each look reads from where the last
one ended, up to the log's end, whether or not anything there was of those kinds.

A follower that asks the store for a few topics and moves only to the last event it got would
look again, every time, at everything stored after that event: while none of its own kinds
arrive, the whole growth of the log since. Taking the log's head before reading, and moving to
it when a page comes back short, means each stored event is looked at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from shared.application import ServiceApplication
from shared.follower import pages_after
from shared.readmodel import BATCH, ReadModel


def stored_topics(events: Iterable[type], earlier: Mapping[str, type]) -> tuple[str, ...]:
    """Every topic `events` are stored under: this build's, and, for an aggregate that was
    defined elsewhere before (its module's `EARLIER_TOPICS`: old topic → aggregate class), the
    topics its events were stored under then — a filter on today's topics alone would pass
    over every event an earlier release stored."""
    found: list[str] = []
    for cls in events:
        found.append(get_topic(cls))
        for old, aggregate in earlier.items():
            prefix = aggregate.__qualname__ + "."
            if cls.__module__ == aggregate.__module__ and cls.__qualname__.startswith(prefix):
                found.append(old + cls.__qualname__[len(aggregate.__qualname__) :])
    return tuple(found)


def read_after(
    app: ServiceApplication, position: int, *, topics: Sequence[str], limit: int
) -> tuple[Sequence[Notification], int]:
    """The events of `topics` after `position`, at most `limit`, and the position to read on
    from: the last one's when the page is full, else the log's head as it was before reading
    (`shared.follower.pages_after`, one page of it)."""
    for page in pages_after(app.recorder, position, limit=limit, topics=topics):
        return page.notifications, page.reached
    return [], position


def events_of(aggregate: type) -> list[type]:
    """The event classes an aggregate class defines (those its stored events are of)."""
    return [
        cls
        for cls in vars(aggregate).values()
        if isinstance(cls, type) and issubclass(cls, DomainEvent)
    ]


class TopicReadModel(ReadModel):
    """A read model that reads only the events of its `topics`, up to the log's end, instead
    of every event of the log."""

    topics: ClassVar[tuple[str, ...]]

    def catch_up(self, progress: Callable[[int], object] | None = None) -> int:
        read = 0
        with self._lock:
            while True:
                position = self.app.positions.load(self.name)
                notifications, upto = read_after(
                    self.app, position, topics=self.topics, limit=BATCH
                )
                if upto == position:
                    return read
                self._write(self.rows(notifications), upto)
                read += len(notifications)
                if progress is not None:
                    progress(upto - position)  # log positions advanced
                if len(notifications) < BATCH:
                    return read

    def rows(self, notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
        """The rows these events change: by default each changed aggregate's, up to date."""
        return [self.row(aggregate) for aggregate in self._fold(notifications)]
