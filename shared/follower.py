"""Follows an application's own notification log from a durable position (at-least-once).

Every reader of the log reads only what is new since its position: `pages_after` filters by
topic in SQL and, once it has seen the log's end, moves the position to that end even when
nothing there was wanted, so a quiet stretch of unwanted events is never read again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresDatastore

from shared.aio import WATCHED_PATIENCE_SECONDS, Doorbell, Wanted, ring_or_stop, sleep_or_stop
from shared.application import ServiceApplication
from shared.sql import reading
from shared.stamping import StampingMapper

# The longest pause between looks at a quiet log, for appends by other processes (replicas),
# when no watch rings for them (shared/log_watch.py; with one, `Doorbell.patience`); this
# process's own appends ring its doorbell. Four looks a second per follower were most of an
# idle service's cost; the first event another replica stores after a quiet spell now waits
# up to this long.
IDLE_POLL_SECONDS = 1.0
# After a batch, the first look for other processes' appends; then less and less often, up
# to IDLE_POLL_SECONDS. This process's own appends of a wanted event wake a follower at once
# (at most every poll interval): looking every 20 ms after each batch found nothing about
# once per refund per follower.
OTHERS_POLL_SECONDS = 0.1
# How often a follower saves the position it moved on (a write and a thread hop each): a busy
# log moves it at every look, and a save per look was a write per look. The first move after
# a quiet spell is saved at once. A crash re-reads at most this much of the log, which the
# followers' work allows: the relay's consumers drop what they have applied, the executor
# finds the payouts it already sent.
SAVE_SECONDS = 1.0


class Pacing:
    """When a loop that follows the log looks again (the followers, notify's senders, the
    webhook deliverer): as soon as this process appends something it wants (the bell rings),
    but at most every `every` seconds, so that a busy log is read in batches; and, for other
    processes' appends, `first` seconds after a look that found something, then twice as long
    after each look that found nothing, up to `longest` — or up to the bell's patience while
    a watch rings it for other processes' appends (shared/log_watch.py)."""

    def __init__(
        self, every: float, *, first: float | None = None, longest: float | None = None
    ) -> None:
        self.every = every
        self.first = max(every, OTHERS_POLL_SECONDS) if first is None else first
        self.longest = max(IDLE_POLL_SECONDS, every) if longest is None else longest
        self.idle = self.first  # how long the next pause waits for a ring, at most

    def looked(self, *, found: bool) -> None:
        self.idle = self.first if found else min(self.idle * 2, WATCHED_PATIENCE_SECONDS)

    def idle_for(self, bell: Doorbell) -> float:
        """How long the next pause waits for a ring before the loop looks anyway."""
        return min(self.idle, bell.patience(self.longest))

    async def pause(
        self,
        bell: Doorbell,
        rings: int,
        stop: asyncio.Event,
        looked: float,
        wanted: Wanted | None = None,
        *,
        due_in: float | None = None,
    ) -> None:
        """Until `bell` rings after `rings` (about something `wanted`), `idle_for` passes or
        `due_in` seconds (work that falls due), or the loop stops; then the rest of `every`
        after the look at `looked` (time.monotonic)."""
        idle = self.idle_for(bell)
        if due_in is not None:
            idle = max(0.0, min(idle, due_in))
        await ring_or_stop(bell, rings, stop, idle, wanted)
        await sleep_or_stop(stop, max(0.0, looked + self.every - time.monotonic()))


@dataclass(frozen=True)
class LogPage:
    """Events read after a position, and where to go on from once they are handled."""

    notifications: Sequence[Notification]
    # Nothing wanted lies between the last notification and `reached`.
    reached: int


# A look reads up to this many events after its position in one query, wanted or not, and
# chooses among them itself: at the log's tail (where a follower nearly always is) that was
# three queries (the end, the topics in between, the wanted events). More than this after
# the position is a backlog, read the indexed way.
TAIL = 100


def pages_after(
    recorder: ApplicationRecorder,
    position: int,
    *,
    limit: int,
    topics: Sequence[str] = (),
    marker: str | None = None,
    choose: Callable[[str], bool] | None = None,
) -> Iterator[LogPage]:
    """Pages of the events after `position` up to the log's end as it is now; `topics`
    (exact), `marker` (a part of the topic, e.g. `:RefundRequest.`) or `choose` (a test of
    a stored topic, e.g. whether it names a class the relay publishes) choose which.

    Notification ids are committed in order (eventsourcing's PostgreSQL recorder inserts
    under an EXCLUSIVE table lock, SQLite has one writer), so no event at or below one a
    read sees can appear later: a page may move the position past every event it saw,
    wanted or not. A marker matches old topics too (an aggregate moved to another module
    keeps its stored topics).

    First the tail: up to TAIL events after the position, in one query. Fewer than that is
    all there is, chosen here. Otherwise it is a backlog, read with the end read first and
    the topics chosen in SQL (a marker turned into exact topics from the topics stored in
    between): a backlog of unwanted events costs TAIL of them read, not all.
    """
    wanted = _wanted(topics, marker, choose)
    tail = recorder.select_notifications(start=position, limit=TAIL, inclusive_of_start=False)
    if not tail:
        return
    if len(tail) == TAIL:
        # A backlog: read the indexed way from the position (the tail read is not reused, so
        # that every page but the last holds `limit` events, as callers count on).
        by_topic = marker is not None or choose is not None
        yield from _backlog_after(recorder, position, limit, topics, wanted, by_topic=by_topic)
        return
    chosen = [n for n in tail if wanted is None or wanted(n.topic)]
    while len(chosen) > limit:
        yield LogPage(chosen[:limit], chosen[limit - 1].id)
        chosen = chosen[limit:]
    yield LogPage(chosen, tail[-1].id)


def _wanted(
    topics: Sequence[str], marker: str | None, choose: Callable[[str], bool] | None
) -> Callable[[str], bool] | None:
    """The test of a stored topic `pages_after` applies (None: every event is wanted)."""
    if marker is not None or choose is not None:
        return lambda topic: (
            (marker is None or marker in topic) and (choose is None or choose(topic))
        )
    if topics:
        exact = frozenset(topics)
        return exact.__contains__
    return None


def _backlog_after(
    recorder: ApplicationRecorder,
    position: int,
    limit: int,
    topics: Sequence[str],
    wanted: Callable[[str], bool] | None,
    *,
    by_topic: bool,
) -> Iterator[LogPage]:
    """The backlog after `position`, `limit` at a time, up to the end as it is now; with
    `by_topic` the wanted topics among those stored in between, else `topics` (or all)."""
    end = int(recorder.max_notification_id() or 0)
    if end <= position:
        return
    if by_topic:
        assert wanted is not None  # a marker or a test chooses
        topics = [topic for topic in _topics_between(recorder, position, end) if wanted(topic)]
        if not topics:
            yield LogPage([], end)
            return
    while True:
        notifications = recorder.select_notifications(
            start=position,
            stop=end,
            limit=limit,
            topics=topics,
            inclusive_of_start=False,
        )
        if len(notifications) < limit:
            yield LogPage(notifications, end)
            return
        position = notifications[-1].id
        yield LogPage(notifications, position)


def _topics_between(recorder: ApplicationRecorder, after: int, end: int) -> list[str]:
    """The distinct topics of the events in (after, end]."""
    datastore: Any = getattr(recorder, "datastore", None)
    table: str = getattr(recorder, "events_table_name", "")
    # The table is the recorder's own; the positions are bound parameters.
    if isinstance(datastore, PostgresDatastore):
        sql = (
            f'SELECT DISTINCT topic FROM "{datastore.schema}"."{table}" '  # noqa: S608
            "WHERE notification_id > %s AND notification_id <= %s"
        )
    else:
        sql = f"SELECT DISTINCT topic FROM {table} WHERE rowid > ? AND rowid <= ?"  # noqa: S608
    with reading(datastore) as cursor:
        cursor.execute(sql, (after, end))
        rows = cursor.fetchall()
    return [str(row["topic"] if isinstance(row, dict) else row[0]) for row in rows]


@dataclass(frozen=True)
class LoggedEvent:
    position: int
    event: Any  # the application's domain event
    # The trace context it was stored under (its audit stamp), when tracing recorded one.
    traceparent: str | None = None


class LogFollower:
    """Reads batches after the saved position; the caller advances after acting on them.

    A crash between acting and advancing repeats the batch, so what the caller
    does must be idempotent (Kafka consumers dedupe by tracking; the gateway by
    merchant refund number). A look that finds nothing wanted moves the position to
    the log's end by itself. Once `load` made the position a durable one, each move is
    saved: the first after a quiet spell at once, then at most every SAVE_SECONDS (by a
    later advance or look), and by `flush` when the follower stops; a crash repeats what
    came after the last save.
    """

    def __init__(
        self,
        app: ServiceApplication,
        name: str,
        *,
        topics: Sequence[str] = (),
        choose: Callable[[str], bool] | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.02,
    ) -> None:
        self.app = app
        self.name = name
        self.topics = tuple(topics)
        self.choose = choose
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.position = 0
        # Where to go on from once the last batch is handled: past its last event, and past
        # the unwanted events after it when the batch reached the log's end.
        self.reached = 0
        self._durable = False
        # The bell's rings before the look that found the last batch, when that batch was
        # not full: the next look waits for a ring after it (or the poll interval).
        self._rings_at_batch: int | None = None
        self._looked_at = 0.0
        # After a look that found nothing: the bell's rings before it, and until when the
        # next look waits for a ring (a call of `next_batch` in between does not look).
        self._quiet: tuple[int, float] | None = None
        # A position moved on and not saved yet, and when one last was. A crash before it is
        # saved reads those events again (see the class's docstring).
        self._unsaved: int | None = None
        self._saved_at = -SAVE_SECONDS
        self.clock = time.monotonic  # for the saves' interval (tests move it on)
        # Which rings of the application's bell may be about an event wanted here.
        self._wanted = _wanted(self.topics, None, choose)
        self.pacing = Pacing(poll_interval)

    async def load(self) -> int:
        self.position = await self.app.call(self.app.positions.load, self.name)
        self.reached = self.position
        self._unsaved = None  # a move not saved before a failed session is read again
        self._durable = True
        self._quiet = None
        return self.position

    async def advance(self, position: int) -> None:
        """Go on from `position` (the batch before it is handled); saved at once, or within
        SAVE_SECONDS of the last save."""
        self.position = position
        self.reached = max(self.reached, position)
        self._unsaved = position
        if self.clock() - self._saved_at >= SAVE_SECONDS:
            await self.app.call(self._save_unsaved)

    async def rewind(self) -> None:
        """Start again from the log's beginning, saved at once (a later save of a position
        moved on before it must never overwrite it: none is left pending)."""
        await self.app.call(self.app.positions.save, self.name, 0)
        self._unsaved = None
        self._quiet = None
        self.position = self.reached = 0

    async def flush(self) -> None:
        """Save the position now if it moved since the last save (the follower stops)."""
        if self._unsaved is not None:
            await self.app.call(self._save_unsaved, True)

    def _read(self) -> list[LoggedEvent]:
        page = next(
            pages_after(
                self.app.recorder,
                self.position,
                limit=self.batch_size,
                topics=self.topics,
                choose=self.choose,
            ),
            None,
        )
        if page is None:
            self._save_unsaved()
            return []
        self.reached = page.reached
        if not page.notifications:
            # Only unwanted events since the position: never read them again.
            self.position = page.reached
            if self._durable:
                self._unsaved = page.reached
        self._save_unsaved()
        return [self._logged(n) for n in page.notifications]

    def _save_unsaved(self, force: bool = False) -> None:
        """Save the position moved on, if SAVE_SECONDS passed since the last save (a later
        advance or look, even one that finds nothing, saves it) or `force`."""
        now = self.clock()
        if self._unsaved is None or (not force and now - self._saved_at < SAVE_SECONDS):
            return
        self.app.positions.save(self.name, self._unsaved)
        self._unsaved = None
        self._saved_at = now

    def _logged(self, notification: Notification) -> LoggedEvent:
        mapper = self.app.mapper
        if not isinstance(mapper, StampingMapper):
            return LoggedEvent(notification.id, mapper.to_domain_event(notification))
        event, stamp = mapper.to_stamped_event(notification)
        return LoggedEvent(notification.id, event, stamp.get("traceparent"))

    async def next_batch(self, wait: float) -> list[LoggedEvent]:
        """The next batch, waiting up to `wait` seconds; empty when nothing new arrived.

        Between looks it waits for this process to append an event it wants to the log (the
        application's `appended` bell), and looks at most every `poll_interval`, so that a
        busy log is read in batches. Other processes' appends ring the bell only where a
        watch looks for them (shared/log_watch.py): without one the log is still looked at,
        OTHERS_POLL_SECONDS after a batch at first, then less and less often, up to every
        `IDLE_POLL_SECONDS`; with one, rarely (`Doorbell.patience`). After a look that found
        nothing, the next look waits for that, however often this is called.
        """
        deadline = time.monotonic() + wait
        bell = self.app.appended
        if self._rings_at_batch is not None:
            # Right after a batch that was not full the log's end was in sight: looking again
            # at once would mostly find nothing (one more thread hop and read per batch).
            # Wait for this process's next wanted append, or a while for other processes'.
            await bell.wait(self._rings_at_batch, min(self.pacing.first, wait), self._wanted)
            self._rings_at_batch = None
            # At most one look per poll interval here too: appends in quick succession (a
            # busy process) join one batch rather than one look, one hop each.
            await asyncio.sleep(max(0.0, self._looked_at + self.poll_interval - time.monotonic()))
        while True:
            if self._quiet is not None:
                rings, wake = self._quiet
                now = time.monotonic()
                if wake > now:
                    rang = await bell.wait(rings, min(wake, deadline) - now, self._wanted)
                    if not rang and time.monotonic() < wake:
                        return []  # the caller's wait is over and nothing new rang
                self._quiet = None
                await asyncio.sleep(
                    max(0.0, self._looked_at + self.poll_interval - time.monotonic())
                )
            rings = bell.rings
            batch = await self.app.call(self._read)
            looked = self._looked_at = time.monotonic()
            if batch:
                self.pacing.looked(found=True)
                self._rings_at_batch = rings if len(batch) < self.batch_size else None
                return batch
            idle = self.pacing.idle_for(bell)
            if self._unsaved is not None:
                idle = min(idle, SAVE_SECONDS)  # the next look saves the moved position
            self._quiet = (rings, looked + idle)
            self.pacing.looked(found=False)
            if looked >= deadline:
                return batch
