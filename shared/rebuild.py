"""Replay a service's log into fresh copies of its read models; compare with the live ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.application import ServiceApplication
from shared.readmodel import ReadModel

SCRATCH_SUFFIX = "rebuild"


@dataclass(frozen=True)
class Difference:
    key: str
    kind: str  # missing (live lacks it), extra (only live has it), different
    live: list[Any] | None
    rebuilt: list[Any] | None


@dataclass
class Comparison:
    service: str
    model: str
    events: int = 0  # the model's own events, read and applied
    logged: int = 0  # log positions the rebuild went over (the whole log, at its start)
    rows: int = 0
    seconds: float = 0.0
    differences: list[Difference] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Log events rebuilt per second: over the whole log, though a model reads only its
        own events (the rest it skips in SQL, which is part of why it is fast)."""
        return self.logged / self.seconds if self.seconds > 0 else 0.0


CATCH_UP_ROUNDS = 20  # to bring the live and the rebuilt table to one position


def rebuild_and_compare(
    app: ServiceApplication,
    model: type[ReadModel],
    progress: Callable[[int], object] | None = None,
) -> Comparison:
    """Build `model` afresh from the log in a scratch table and diff it with the live table."""
    live = model(app)
    live.catch_up()
    fresh = model.scratch(app, SCRATCH_SUFFIX)
    result = Comparison(app.service, model.name)

    def advanced(positions: int) -> None:
        result.logged += positions
        if progress is not None:
            progress(positions)

    try:
        started = time.perf_counter()
        result.events = fresh.rebuild(advanced)
        result.seconds = time.perf_counter() - started
        # Whatever was stored meanwhile reaches both, up to the same position: the service
        # may still be storing (notify sending its last messages), and a row stored between
        # the two catch-ups would otherwise be in one table only.
        for _ in range(CATCH_UP_ROUNDS):
            live.catch_up()
            fresh.catch_up()
            if app.positions.load(live.name) == app.positions.load(fresh.name):
                break
        live_rows, fresh_rows = live.all_rows(), fresh.all_rows()
    finally:
        fresh.drop()
    result.rows = len(fresh_rows)
    for key in sorted(live_rows.keys() | fresh_rows.keys()):
        before, after = live_rows.get(key), fresh_rows.get(key)
        if before == after:
            continue
        kind = "missing" if before is None else "extra" if after is None else "different"
        result.differences.append(Difference(key, kind, before, after))
    return result
