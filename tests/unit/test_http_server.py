"""The lean uvicorn server: it serves (Date header included), and a stop wakes its main loop
at once rather than at its next tick."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from shared import http_server
from shared.http_server import LeanServer
from shared.runtime import run_on_libuv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serving() -> tuple[LeanServer, asyncio.Task[None], int]:
    """A lean server of a one-route app on a free port, started: (server, its task, port)."""
    app = FastAPI()
    app.get("/ping")(lambda: {"pong": True})
    port = _free_port()
    server = LeanServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, serving, port


async def test_it_serves_and_stop_ends_it_without_waiting_for_a_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_server, "TICK_SECONDS", 3600.0)  # a tick would never come
    server, serving, port = await _serving()
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/ping")
    assert answer.json() == {"pong": True}
    assert "date" in answer.headers  # the header the tick keeps fresh was set at start

    server.stop()
    await asyncio.wait_for(serving, 10)  # ends although no tick is due for an hour
    assert serving.done() and serving.exception() is None


def test_sigterm_stops_a_sandbox_style_server_at_once() -> None:
    """serve_http (the sandboxes' uvicorn.run) with uvicorn's own signal handling: SIGTERM
    wakes the loop, though its tick is an hour away."""
    port = _free_port()
    script = textwrap.dedent(
        f"""
        from fastapi import FastAPI
        from shared import http_server
        http_server.TICK_SECONDS = 3600.0
        app = FastAPI()
        http_server.serve_http(app, host="127.0.0.1", port={port}, log_level="info")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "Uvicorn running" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_a_connection_taken_just_before_a_stop_still_gets_its_answer() -> None:
    """uvicorn alone closes a connection that has not sent its request when it stops; a
    client that had just connected would see that as a failure (a rolling update must fail no
    request)."""
    server, serving, port = await _serving()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while not server.server_state.connections:  # taken by the server, no request yet
        await asyncio.sleep(0.005)

    server.stop()
    await asyncio.sleep(0.05)  # the request comes a moment after the stop
    writer.write(b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await asyncio.wait_for(serving, 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b'{"pong":true}')


@pytest.mark.parametrize("run", [asyncio.run, run_on_libuv], ids=["asyncio", "uvloop"])
def test_a_replica_stopping_under_load_resets_no_connection(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """Two servers share one listening socket (replicas of one service, refunds/replicas.py);
    one stops while clients keep connecting. asyncio accepts a connection in one callback and
    makes its transport in a task: a stop between the two dropped the connection unread and
    its client saw ECONNRESET (1 round in 4 here before the fix; CI once failed the rolling
    update drill on it). Every request must get its answer, from either server, on asyncio's
    loop and on uvloop's (the one our services run on, shared/runtime.py)."""
    app = FastAPI()
    app.post("/ping")(lambda: {"pong": True})
    failures: list[str] = []
    answered = 0
    for _ in range(12):
        shared = socket.socket()
        shared.bind(("127.0.0.1", 0))
        shared.listen(1024)
        port = shared.getsockname()[1]
        staying, stopping = (_ServerThread(app, shared, run) for _ in range(2))
        clients = _Clients(port, failures)
        time.sleep(0.1)
        stopping.stop()
        time.sleep(0.1)  # requests go on to the staying server
        answered += clients.stop()
        staying.stop()
        shared.close()
    assert failures == [], failures[:5]
    assert answered > 100


class _ServerThread:
    """A lean server in a thread of its own, serving a duplicate of a shared socket."""

    def __init__(
        self, app: FastAPI, shared: socket.socket, run: Callable[[Coroutine[Any, Any, None]], None]
    ) -> None:
        self.server = LeanServer(uvicorn.Config(app, log_level="warning", access_log=False))
        own = socket.socket(fileno=os.dup(shared.fileno()))
        self.thread = threading.Thread(target=run, args=(self.server.serve([own]),))
        self.thread.start()
        while not self.server.started:
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


class _Clients:
    """Threads posting on a new connection each time until stopped."""

    def __init__(self, port: int, failures: list[str]) -> None:
        self.port, self.failures, self.answered = port, failures, 0
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._post) for _ in range(6)]
        for thread in self.threads:
            thread.start()

    def _post(self) -> None:
        while not self.done.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("POST", "/ping", body=b"{}")
                answer = connection.getresponse()
                assert answer.status == 200, answer.status
                answer.read()
                self.answered += 1
            except OSError as error:
                self.failures.append(repr(error))
            finally:
                connection.close()

    def stop(self) -> int:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=10)
        return self.answered


def test_our_processes_run_on_uvloops_event_loop() -> None:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run_on_libuv(main())
    assert seen == ["uvloop"]
