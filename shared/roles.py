"""Which background roles this process runs, for `refunds_role_active` on /metrics.

A role is one of a service's background loops (relay, consumer, executor, SLA clock …). A
fleet needs each role running somewhere: a role this process could run but does not (switched
off in its settings) is declared, so the metric shows 0 here rather than nothing, and an alert
can tell "nobody runs the executor" from "the executor is not a thing here". A role counts as
active while its loop runs: one that has ended (or was never started) shows 0. Issue 19's
leases will make "running" mean "holding the role's lease"; the metric keeps its name.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from shared.runtime import Worker


class Roles:
    def __init__(self) -> None:
        # Loops of each role running now; a declared role not running has 0.
        self._running: Counter[str] = Counter()
        self._declared: set[str] = set()

    def declare(self, role: str) -> None:
        """`role` belongs to this service but this process does not run it."""
        self._declared.add(role)

    def run(self, role: str, worker: Worker) -> Worker:
        """`worker`, counted as running `role` from its start until it returns or fails."""
        self.declare(role)

        async def running(stop: asyncio.Event) -> None:
            self._running[role] += 1
            try:
                await worker(stop)
            finally:
                self._running[role] -= 1

        return running

    def active(self) -> dict[str, bool]:
        """Every declared role and whether a loop of it runs in this process now."""
        return {role: self._running[role] > 0 for role in sorted(self._declared)}
