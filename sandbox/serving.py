"""What every sandbox shares: where it listens (from the environment), `with` to run it,
and the background sender that delivers callbacks or pushes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Self

import httpx

from shared.http_client import ONE_PEER

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = "./data"
EXIT_BAD_CONFIG = 2


def host_from_env(name: str) -> str:
    host = os.environ.get(name, DEFAULT_HOST).strip()
    if not host:
        raise ValueError(f"{name} must not be empty")
    return host


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{name} must be between 1 and 65535, got {port}")
    return port


def data_dir_from_env() -> Path:
    return Path(os.environ.get("SANDBOX_DATA_DIR", DEFAULT_DATA_DIR))


class Served:
    """A sandbox started by `start` and stopped by `stop`, also as a `with` block."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class DueWork:
    """A sandbox's background sender: wakes when told (or every `POLL_SECONDS`, for work
    another process queued), does what is due in `step`, and sends each delivery as a task
    of its own, so one slow receiver holds up no other. Subclasses name the timeout and
    what to call themselves in the log."""

    # Also polls, for work another process may have queued; in-process work wakes it at once
    # and a due time sets its own wait, so an idle sandbox need not look often.
    POLL_SECONDS = 2.0
    TIMEOUT_SECONDS = 5.0
    WHAT = "sandbox worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for due work now; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        # A fresh event per run: an app may be served again, on another loop.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        sending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=self.TIMEOUT_SECONDS, limits=ONE_PEER) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        wait = await self.step(client, sending)
                    except Exception:  # storage trouble: keep the worker alive
                        log.exception("%s failed; retrying", self.WHAT)
                        wait = self.POLL_SECONDS
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
            finally:
                self._loop = None
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)

    async def step(self, client: httpx.AsyncClient, sending: set[asyncio.Task[None]]) -> float:
        """Do what is due; answer how long to wait at most before looking again."""
        raise NotImplementedError

    async def deliver(self, client: httpx.AsyncClient, delivery: Any) -> None:
        """Make one delivery attempt and record its outcome."""
        raise NotImplementedError

    def send(
        self, sending: set[asyncio.Task[None]], client: httpx.AsyncClient, delivery: Any
    ) -> None:
        """Deliver in a task of its own; a failure to record the attempt is logged, and the
        attempt stays claimed until the next start makes it again."""

        async def logged() -> None:
            try:
                await self.deliver(client, delivery)
            except Exception:
                log.exception("%s: recording attempt %s failed", self.WHAT, delivery.id)

        task = asyncio.create_task(logged())
        sending.add(task)
        task.add_done_callback(sending.discard)

    def wait_for(self, next_due: float | None) -> float:
        """How long to sleep before the next due delivery (polling at least every so often)."""
        if next_due is None:
            return self.POLL_SECONDS
        return min(self.POLL_SECONDS, max(0.0, next_due - time.time()))
