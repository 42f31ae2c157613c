"""The aggregates of the refunds being seeded, kept in memory between rounds.

The seeder is its stores' only writer and stores every aggregate it changes, so the
aggregate it last stored is the store's current version: a reaction that looks one up gets
that object itself, without reading and replaying its events (a third of the pipeline's time)
or copying it. Kept only for one batch of refunds, so memory does not grow with history.

A reaction that changed a kept aggregate without collecting its events would leave the kept
object ahead of the store: `check` refuses that after every round.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.application import ServiceApplication


class KeptAggregates:
    def __init__(self, app: ServiceApplication) -> None:
        self.aggregates: dict[uuid.UUID, Any] = {}
        self.lent: list[Any] = []
        self.loads = 0  # look-ups that read the store (found or not)
        self._load = app.repository.get
        # eventsourcing's `aggregate_id in repository` calls `get` too.
        app.repository.get = self.get  # type: ignore[method-assign]

    def get(self, aggregate_id: uuid.UUID, *, version: int | None = None, **options: Any) -> Any:
        if version is not None:
            return self._load(aggregate_id, version=version, **options)
        aggregate = self.aggregates.get(aggregate_id)
        if aggregate is None:
            self.loads += 1
            aggregate = self._load(aggregate_id, **options)
            self.aggregates[aggregate_id] = aggregate
        self.lent.append(aggregate)
        return aggregate

    def keep(self, aggregates: Any) -> None:
        """These were just stored: they are the store's current versions."""
        for aggregate in aggregates:
            self.aggregates[aggregate.id] = aggregate

    def check(self) -> None:
        """Every aggregate lent since the last check has had its changes stored."""
        for aggregate in self.lent:
            if aggregate.pending_events:
                raise RuntimeError(
                    f"{type(aggregate).__name__} {aggregate.id} changed but not stored"
                )
        self.lent.clear()

    def clear(self) -> None:
        self.check()
        self.aggregates.clear()
