"""Which background roles this process runs, one leader per role across the fleet.

A role is one of a service's background loops (relay, consumer, executor, SLA clock …). A
fleet needs each role running somewhere, and the roles that act on the outside world or append
to the log running in one place only. So a leased role's loop runs only while this process
holds the role's lease (shared/leases.py): it waits, asking every ttl/3, while another replica
holds it; it renews every ttl/3 while it runs; and when a renewal fails (another replica took
the role after we stalled) it stops the loop through the loop's own stop event and goes back
to waiting. The lease travels with the loop's task (shared/fencing.py), so a loop that wakes
from a pause past its TTL cannot commit anything for the role before it notices.

Roles that only build idempotent, version-guarded local state (read-model indexes) may opt
out (`leased=False`): every replica runs them, as queries catch them up inline anyway.

`refunds_role_active` shows 1 for a role whose loop runs here now (for a leased role: holds
the lease and runs), 0 for one declared but not running here; `refunds_role_epoch` the epoch
of each lease held here, so a takeover shows as a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import Counter

from shared.aio import sleep_or_stop
from shared.fencing import Lease, LeaseLost, current_lease
from shared.leases import Leases
from shared.runtime import Worker

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10  # what a stopping loop gets to finish its step, as at shutdown


class Roles:
    def __init__(self, leases: Leases | None = None) -> None:
        # Without leases (a single process, a test) every role runs unconditionally.
        self._leases = leases
        # Loops of each role running now; a declared role not running has 0.
        self._running: Counter[str] = Counter()
        self._declared: set[str] = set()
        self._epochs: dict[str, int] = {}  # leased roles held now → their epoch
        self._renewing: asyncio.Future[bool] | None = None  # a renewal on its way

    def declare(self, role: str) -> None:
        """`role` belongs to this service but this process does not run it."""
        self._declared.add(role)

    def run(self, role: str, worker: Worker, *, leased: bool = True) -> Worker:
        """`worker` as this process's `role`: while holding its lease when `leased` (and this
        process has leases), otherwise from its start until it returns or fails."""
        self.declare(role)
        leases = self._leases
        if leases is None or not leased:
            return self._counted(role, worker)

        async def leading(stop: asyncio.Event) -> None:
            while not stop.is_set():
                epoch = await self._acquire(leases, role)
                if epoch is None:
                    await sleep_or_stop(stop, leases.ttl / 3)
                    continue
                if await self._lead(leases, role, epoch, worker, stop):
                    return

        return leading

    def _counted(self, role: str, worker: Worker) -> Worker:
        async def running(stop: asyncio.Event) -> None:
            self._running[role] += 1
            try:
                await worker(stop)
            finally:
                self._running[role] -= 1

        return running

    async def _acquire(self, leases: Leases, role: str) -> int | None:
        try:
            return await asyncio.to_thread(leases.acquire, role)
        except Exception:  # the store may be briefly down: ask again later
            log.exception("could not ask for the %s lease", role)
            return None

    async def _lead(
        self, leases: Leases, role: str, epoch: int, worker: Worker, stop: asyncio.Event
    ) -> bool:
        """Run `worker` under the lease at `epoch` until the process stops or the worker ends
        (True) or the lease is lost (False: wait for it again)."""
        log.info("%s: %s leads with epoch %d", role, leases.holder, epoch)
        own_stop = asyncio.Event()
        # The task's copy of the context carries the lease into every write it makes.
        context = contextvars.copy_context()
        context.run(current_lease.set, Lease(role, leases.holder, epoch))
        task = asyncio.create_task(worker(own_stop), context=context)
        self._running[role] += 1
        self._epochs[role] = epoch
        renewed_at = time.monotonic()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                await asyncio.wait(
                    {task, stopping}, timeout=leases.ttl / 3, return_when=asyncio.FIRST_COMPLETED
                )
                if task.done():
                    if isinstance(task.exception(), LeaseLost):
                        log.warning("%s: lease lost by %s at epoch %d", role, leases.holder, epoch)
                        return False
                    await self._release(leases, role, epoch)
                    task.result()  # the worker's own failure is the role's, as without leases
                    return True
                if stop.is_set():
                    await self._stop(task, own_stop)
                    await self._release(leases, role, epoch)
                    return True
                try:
                    kept = await self._renew(leases, role, epoch)
                    if kept:
                        renewed_at = time.monotonic()
                except Exception:
                    log.exception("could not renew the %s lease", role)
                    # Unconfirmed for most of a TTL: another replica may take it any moment.
                    kept = time.monotonic() - renewed_at < leases.ttl * 2 / 3
                if not kept:
                    log.warning("%s: lease lost by %s at epoch %d", role, leases.holder, epoch)
                    await self._stop(task, own_stop)
                    return False
        finally:
            stopping.cancel()
            self._running[role] -= 1
            self._epochs.pop(role, None)

    async def _renew(self, leases: Leases, role: str, epoch: int) -> bool:
        """Renew `role`'s lease. One renewal renews every lease this process holds, and the
        roles' clocks tick together: a role whose lease another's renewal covered lately, or
        covers now, asks nothing itself (a thread hop per role and interval was most of an
        idle leader's wakes, seven roles in review)."""
        if leases.renewed_lately(role, epoch):
            return True
        pending = self._renewing
        if pending is None or pending.done():
            self._renewing = asyncio.ensure_future(asyncio.to_thread(leases.renew, role, epoch))
            return await asyncio.shield(self._renewing)
        with contextlib.suppress(Exception):  # its failure is its role's; ask for ours then
            await asyncio.shield(pending)
        if leases.renewed_lately(role, epoch):
            return True
        return await asyncio.to_thread(leases.renew, role, epoch)

    async def _stop(self, task: asyncio.Task[None], own_stop: asyncio.Event) -> None:
        """Stop the worker through its own stop event; cancel it if it will not stop."""
        own_stop.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and not isinstance(task.exception(), (LeaseLost, type(None))):
            log.error("a stopped role's loop failed", exc_info=task.exception())

    async def _release(self, leases: Leases, role: str, epoch: int) -> None:
        try:
            await asyncio.to_thread(leases.release, role, epoch)
        except Exception:  # it will expire by itself
            log.exception("could not release the %s lease", role)

    def active(self) -> dict[str, bool]:
        """Every declared role and whether a loop of it runs in this process now."""
        return {role: self._running[role] > 0 for role in sorted(self._declared)}

    def epochs(self) -> dict[str, int]:
        """The epoch of each role lease this process holds now."""
        return dict(sorted(self._epochs.items()))
