"""A real HTTP webhook receiver for tests: records every POST, answers as it is told.

It listens on a free 127.0.0.1 port in its own threads; it can answer with queued statuses
(then a default), hold its answer until released, and go down and come back on the same port.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None, host_name: str = "127.0.0.1") -> None:
        self.tls = tls  # serve https with this context (the URL then names `host_name`)
        self.host_name = host_name
        self.requests: list[Received] = []
        self.default_status = 200
        self.retry_after: str | None = None
        self.reply = b'{"ok":true}'
        self.held = threading.Event()
        self.held.set()  # set: answer at once; clear: hold answers until set again
        self._statuses: list[int] = []
        self._arrived = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- control --------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                received = Received(
                    {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver._arrived:
                    receiver.requests.append(received)
                    receiver._arrived.notify_all()
                receiver.held.wait(30)
                status = receiver._next_status()
                self.send_response(status)
                if receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then with `default_status`."""
        with self._arrived:
            self._statuses.extend(statuses)

    def _next_status(self) -> int:
        with self._arrived:
            return self._statuses.pop(0) if self._statuses else self.default_status

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host_name}:{self.port}/hooks/refunds"

    # --- waiting --------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """At least `count` requests, or AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self._arrived.wait(left)
            return list(self.requests)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.held.set()
        self.stop()
