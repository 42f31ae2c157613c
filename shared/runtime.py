"""Runs one service process: the HTTP server and its background loops, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from shared import tracing
from shared.logs import configure_logging
from shared.settings import ServiceSettings

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class _Server(uvicorn.Server):
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
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(worker(stop)) for worker in service.workers
    ]
    try:
        await server.serve()  # returns on SIGINT/SIGTERM
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
    asyncio.run(run_service(service))
