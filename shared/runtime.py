"""Runs one service process: the HTTP server and its background loops, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI

from shared import tracing
from shared.health import Health
from shared.http_server import LeanServer
from shared.logs import configure_logging
from shared.settings import ServiceSettings

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
# Listening sockets a supervisor bound and passed down (`refunds dev --replicas`, see
# refunds/replicas.py): comma-separated descriptor numbers. Served instead of binding
# REFUNDS_HOST:REFUNDS_PORT, so several replicas share one port.
LISTEN_FDS = "REFUNDS_LISTEN_FDS"


class _Server(LeanServer):
    """uvicorn re-raises SIGINT/SIGTERM after serving, which would cancel our loops
    mid-step; we take the signals ourselves and stop everything in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Service:
    """What a composition root builds: the HTTP app and the loops to run beside it."""

    name: str
    settings: ServiceSettings
    http: FastAPI
    workers: list[Worker] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    health: Health | None = None  # /readyz turns false through it at SIGTERM


def inherited_sockets() -> list[socket.socket]:
    """The listening sockets named by REFUNDS_LISTEN_FDS (none when unset)."""
    numbers = os.environ.get(LISTEN_FDS, "")
    return [socket.socket(fileno=int(fd)) for fd in numbers.split(",") if fd.strip()]


async def run_service(service: Service) -> None:
    config = uvicorn.Config(
        service.http,
        host=service.settings.host,
        port=service.settings.port,
        log_level=service.settings.log_level.lower(),
        access_log=False,
        # JSON lines: uvicorn's own loggers go through the root's JSON handler, not its text.
        log_config=None if service.settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    server = _Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def shut_down() -> None:
        """A graceful stop (a rolling update): not ready at once; the loops finish their
        step, release their leases (another replica takes each role without waiting for it
        to expire) and the consumer leaves its group, while uvicorn stops accepting and lets
        the requests in flight finish."""
        if service.health is not None:
            service.health.draining = True
        stop.set()
        server.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shut_down)
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(worker(stop)) for worker in service.workers
    ]
    try:
        await server.serve(sockets=inherited_sockets() or None)  # returns on SIGINT/SIGTERM
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        service.close()


def serve(build: Callable[[], Service]) -> None:
    service = build()
    settings = service.settings
    configure_logging(
        settings.log_level, settings.log_format, service=service.name, replica=settings.replica
    )
    stop_tracing = tracing.setup(service.name, settings, service.http)
    close = service.close

    def close_and_flush() -> None:
        close()
        stop_tracing()  # the last spans are exported before the process ends

    service.close = close_and_flush
    # What start-up built (modules, app, routes, models) lives as long as the process:
    # frozen, the garbage collector stops walking it again in every full collection.
    gc.freeze()
    run_on_libuv(run_service(service))


def run_on_libuv(main: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run`, on uvloop's event loop (libuv, in C) instead of asyncio's own: the
    four services took 5 % less CPU per refund (three alternated runs, README Figures), the
    loop's own turn being a good part of a service's Python work at 20 refunds/s."""
    uvloop.run(main)
