"""Base application for every service: tracking store, Money transcoding, exactly-once reactions."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, TypeVar, cast

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    ProjectorFunction,
    Repository,
)
from eventsourcing.domain import Aggregate, BaseAggregate
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Mapper,
    ProcessRecorder,
    Tracking,
    Transcoding,
)
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.utils import strtobool

from shared.aio import Doorbell
from shared.contracts import EVENT_TYPES, CloudEvent, IntegrationEvent
from shared.idempotency import DEFAULT_TTL, IdempotencyKey, KeyedRequest, Outcome, as_record
from shared.money import Money
from shared.sql import check_connections_cheaply
from shared.stamping import StampingMapper, acting
from shared.store import Positions

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")


class MoneyAsDict(Transcoding):
    type = Money
    name = "money"

    def encode(self, obj: Money) -> dict[str, Any]:
        return {"amount": obj.amount, "currency": obj.currency}

    def decode(self, data: dict[str, Any]) -> Money:
        return Money(data["amount"], data["currency"])


def project(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` without its per-event protocol assert, which took
    a tenth of notify's time replaying (every stored event here is an aggregate event)."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class FastRepository(Repository[uuid.UUID]):
    """Aggregates are rebuilt with `project`, unless a caller names another projector."""

    def get(
        self,
        aggregate_id: uuid.UUID,
        *,
        version: int | None = None,
        projector_func: ProjectorFunction[Any, Any] = project,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )

    @contextmanager
    def reading(self, aggregate_id: uuid.UUID) -> Iterator[Any]:
        """The aggregate, up to date, to read only while the `with` block lasts: the cached
        object itself, without the deep copy `get` makes for commands (most of the cost of
        a look at a cached aggregate). Never change it, save it, or keep it beyond the block.

        The block holds the aggregate's fast-forward lock: eventsourcing catches a cached
        aggregate up with newer events in place, under that lock, so no command's load can
        change it under the reader meanwhile (they wait for the block to end). Inside, do
        not load the same aggregate again (the lock is not reentrant): copy it to decide."""
        cache = self.cache
        if cache is None or not self.fastforward or not self.deepcopy_from_cache:
            # Nothing is shared safely with readers under these settings: a plain load.
            yield self.get(aggregate_id)
            return
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    aggregate = cache.get(aggregate_id)
                except KeyError:
                    aggregate = self._reconstruct_aggregate(aggregate_id, None, project)
                    cache.put(aggregate_id, aggregate)
                else:
                    newer = self.event_store.get(originator_id=aggregate_id, gt=aggregate.version)
                    aggregate = project(aggregate, newer)
                yield aggregate
        finally:
            self._disuse_fastforward_lock(aggregate_id)


class Reaction(ProcessingEvent[uuid.UUID]):
    """eventsourcing's ProcessingEvent (new events, with the tracking of the message that
    caused them), collecting from an aggregate without its runtime protocol checks:
    `isinstance` against a typing Protocol walks the protocol's members on every call, 1-3 %
    of each service's time. Anything but an aggregate goes the library's way."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


class DuplicateMessage(Exception):
    """The (source, position) was already applied."""


class ServiceApplication(Application[uuid.UUID]):
    """An eventsourcing application whose store also records tracking of upstream messages.

    `handle()` applies one integration event at most once: the new domain events
    and the `(source, position)` tracking row are written in one transaction, and
    tracking is one row per position (SINGLE_ROW_TRACKING=n), so events of one
    source arriving out of order across partitions are all applied.
    """

    max_conflict_retries = 10
    max_command_attempts = 60
    idempotency_ttl: timedelta = DEFAULT_TTL
    # The integration events `react` acts on (None: it may act on any). The consumer passes
    # over a message of another type without a store transaction: applied, it would store
    # its tracking row and nothing else, and a reaction that stores nothing has no effect to
    # repeat. Payout reads intake's topic for withdrawals: every request was such a write.
    reacts_to: ClassVar[frozenset[type[IntegrationEvent]] | None] = None

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # Rung after this process stored new events: its log followers wake on it.
        self.appended = Doorbell()
        # The notification id of the latest event this process stored (shared/log_watch.py
        # rings the bell for what lies beyond it and beyond its own last look).
        self.last_appended = 0
        super().__init__(env=env)
        check_connections_cheaply(getattr(self.recorder, "datastore", None))

    @cached_property
    def calls_on_loop(self) -> bool:
        """Whether the service's loops make their store calls on the event loop itself.

        SQLite is a file on this machine: a call takes about as long as handing it to a
        worker thread and back (two wake-ups, a future chained across threads, the GIL passed
        twice), and those hops were a good part of a service's CPU on SQLite. PostgreSQL's are
        network round trips, which must not hold up the loop: they go to a thread."""
        return isinstance(getattr(self.recorder, "datastore", None), SQLiteDatastore)

    async def call(self, func: Callable[..., T], /, *args: Any) -> T:
        """Run a store call (loads, saves, log reads: nothing that waits on the network) from
        a loop: inline on SQLite, in a worker thread otherwise (see `calls_on_loop`)."""
        if self.calls_on_loop:
            # The loop's other tasks get a turn first: a loop making one store call after
            # another (a sender working off a backlog) would otherwise never yield to them.
            await asyncio.sleep(0)
            return func(*args)
        return await asyncio.to_thread(func, *args)

    def clock(self) -> datetime:
        """Now, for expiry decisions (tests move it forward)."""
        return datetime.now(UTC)

    @property
    def service(self) -> str:
        """The service's short name (`intake`), from the application's name."""
        return self.name.removesuffix("Application").lower()

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        mapper = self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=StampingMapper
        )
        assert isinstance(mapper, StampingMapper)
        mapper.default_actor = f"system:{self.service}"
        return mapper

    def construct_repository(self) -> Repository[uuid.UUID]:
        # eventsourcing's own construction (its cache settings from the environment,
        # shared.store.store_env), with the faster projector.
        size = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return FastRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(size) if size else None,
            fastforward=strtobool(self.env.get(self.AGGREGATE_CACHE_FASTFORWARD, "y")),
            deepcopy_from_cache=strtobool(self.env.get(self.DEEPCOPY_FROM_AGGREGATE_CACHE, "y")),
        )

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(MoneyAsDict())

    @cached_property
    def positions(self) -> Positions:
        return Positions(self.recorder)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """eventsourcing's `save`, collecting through `Reaction` (and without the deprecated
        `notify` hook, which nothing here implements)."""
        processing = Reaction()
        processing.collect_events(*objs, **kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def _record(self, processing_event: ProcessingEvent[uuid.UUID]) -> Any:
        recordings = super()._record(processing_event)
        # What was stored, so that only the followers that want one of these look (a message
        # applied with no events, only its tracking row, stored nothing they could want).
        if recordings:
            self.last_appended = max(self.last_appended, recordings[-1].notification.id)
            self.appended.ring(r.notification.topic for r in recordings)
        return recordings

    def handle(self, message: CloudEvent, *, checked: bool = False) -> bool:
        """Apply `message` exactly once; False when it had already been applied.

        `checked`: the caller has just found it untracked (the consumer looks a batch up at
        once), so the first look is skipped. Tracking is still looked at before a reaction
        runs again: reactions are not re-run for a message that is applied.
        """
        tracking = Tracking(application_name=message.source, notification_id=message.position)
        payload = message.payload()
        for attempt in range(self.max_conflict_retries):
            if (attempt or not checked) and self.positions.is_tracked(tracking):
                return False
            processing = Reaction(tracking)
            self.react(payload, message, processing)
            try:
                # The reaction is this service's own doing, caused by the upstream event.
                with acting(
                    f"system:{self.service}",
                    via=f"event:{message.type}",
                    causation=message.id,
                    correlation=message.correlationid,
                ):
                    self._record(processing)
            except IntegrityError:
                # Either a concurrent duplicate (then tracked) or an aggregate
                # version conflict (then retry on fresh state).
                continue
            self._keep_cached(processing)
            return True
        if self.positions.is_tracked(tracking):
            return False
        raise RuntimeError(f"could not apply {message.type} {message.id}: persistent conflict")

    def _keep_cached(self, processing: ProcessingEvent[uuid.UUID]) -> None:
        """Keep the aggregates a reaction just stored in the cache, at their new version.

        eventsourcing caches an aggregate only when it is loaded (with fast-forwarding on,
        as here), so the next message about one it stored replayed it from its first event;
        now that load fast-forwards from the stored version (and finds nothing new unless
        another process wrote meanwhile). Nothing else holds these objects: a reaction
        decides on copies and new aggregates, and is dropped once stored."""
        cache = self.repository.cache
        if cache is not None:
            for aggregate_id, aggregate in processing.aggregates.items():
                cache.put(aggregate_id, aggregate)

    @contextmanager
    def reading(self, aggregate_id: uuid.UUID) -> Iterator[Any]:
        """The aggregate to read only within the block (a view, a look before deciding), no
        copy made: never change or save it, nor keep it past the block; `update` and
        `repository.get` load a copy to decide on. See `FastRepository.reading`."""
        repository = self.repository
        if isinstance(repository, FastRepository):
            with repository.reading(aggregate_id) as aggregate:
                yield aggregate
        else:
            yield repository.get(aggregate_id)

    def update(self, aggregate_id: uuid.UUID, change: Callable[[A], object]) -> A:
        """Load, apply `change`, save; when another writer got there first, reload and redo.

        `change` must be a pure decision on the aggregate (no I/O), so redoing it is safe.
        """
        for _ in range(self.max_conflict_retries):
            aggregate = cast(A, self.repository.get(aggregate_id))
            change(aggregate)
            try:
                self.save(aggregate)
            except IntegrityError:
                continue
            return aggregate
        raise RuntimeError(f"could not update {aggregate_id}: persistent conflict")

    def execute(
        self,
        keyed: KeyedRequest | None,
        attempt: Callable[[], tuple[Outcome, list[Aggregate]]],
    ) -> tuple[Outcome, Aggregate | None]:
        """Run a command at most once per idempotency key.

        Returns the outcome and, when the command ran now, the first aggregate it
        saved (the answer, already in memory); None when the outcome is a replay.

        `attempt` decides on freshly loaded aggregates and returns the outcome and
        the aggregates to save; it must not save or do I/O beyond loading, because a
        write conflict (a concurrent command on the same order, or the same key)
        runs it again. Its exceptions (the command's refusals) save nothing.
        """
        for tries in range(self.max_command_attempts):
            now = self.clock()
            record = self._key_record(keyed)
            remembered = record.answer(keyed, now) if record and keyed else None
            if remembered is not None:
                return remembered, None
            try:
                outcome, aggregates = attempt()
            except Exception:
                # A concurrent request with the same key may have succeeded between our
                # look-up and our decision (so the order now looks taken): answer as it did.
                remembered = self._remembered(keyed, now)
                if remembered is None:
                    raise
                return remembered, None
            if keyed is not None:
                expires = now + self.idempotency_ttl
                if record is None:
                    record = IdempotencyKey(
                        scope=keyed.scope,
                        key=keyed.key,
                        fingerprint=keyed.fingerprint,
                        outcome=as_record(outcome),
                        expires_at=expires,
                    )
                else:
                    record.reuse(
                        fingerprint=keyed.fingerprint,
                        outcome=as_record(outcome),
                        expires_at=expires,
                    )
                aggregates = [*aggregates, record]
            try:
                self.save(*aggregates)
            except IntegrityError:
                # Someone else wrote one of these aggregates first: decide again on fresh
                # state, after a short random pause so that contenders spread out.
                time.sleep(random.uniform(0, 0.002 * min(tries + 1, 10)))
                continue
            return outcome, aggregates[0]
        raise RuntimeError("could not complete the command: persistent write conflicts")

    def execute_once(
        self,
        keyed: KeyedRequest | None,
        attempt: Callable[[], tuple[Outcome, list[Aggregate]]],
        answer: type[A],
    ) -> tuple[A, bool]:
        """`execute`, answered with the aggregate of type `answer` as first answered and
        whether this was a replay: the one just saved, or (a replay) the one the outcome
        names, at the version it had when it was first answered."""
        outcome, saved = self.execute(keyed, attempt)
        if isinstance(saved, answer):
            return saved, False
        return self.at_outcome(outcome, answer), True

    def at_outcome(self, outcome: Outcome, answer: type[A]) -> A:
        """The aggregate an earlier answer showed, at the version it showed."""
        return cast(A, self.repository.get(outcome.aggregate_id, version=outcome.version))

    def _key_record(self, keyed: KeyedRequest | None) -> IdempotencyKey | None:
        if keyed is None:
            return None
        try:
            record: IdempotencyKey = self.repository.get(keyed.record_id)
        except AggregateNotFoundError:
            return None
        return record

    def _remembered(self, keyed: KeyedRequest | None, now: datetime) -> Outcome | None:
        record = self._key_record(keyed)
        return record.answer(keyed, now) if record and keyed else None

    def reacts(self, message: CloudEvent) -> bool:
        """Whether `react` may act on `message` (see `reacts_to`)."""
        return self.reacts_to is None or EVENT_TYPES[message.type] in self.reacts_to

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        """Collect the domain events this service stores in reaction; default: none."""

    def is_reachable(self) -> bool:
        try:
            self.recorder.max_notification_id()
        except Exception:  # readiness reports any store failure the same way
            log.exception("store not reachable")
            return False
        return True
