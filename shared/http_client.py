"""HTTP clients that talk to one peer at a rate: how they keep their connections, and the
aiohttp client of the calls made for every refund.

httpx is the clients' library (the provider adapters, webhooks, the console, the sandboxes);
the payout executor's call to the sandbox gateway, made for every bank-transfer refund, goes
through `JsonPeer` on aiohttp instead: measured on the dev machine against the same server,
0.72-0.74 ms of client CPU per call with httpx, 0.18-0.20 with aiohttp (its parser is C).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from shared import tracing

# httpx looks at every pooled connection, through anyio's attribute lookup, as each request
# is given one and again as its response closes (~50 µs per idle connection per request):
# the 16 idle connections the payout executor's bursts left to the gateway were a fifth of
# a payout's HTTP cost. Bursts beyond this many open connections that close after use.
KEPT_ALIVE = 4
ONE_PEER = httpx.Limits(max_connections=100, max_keepalive_connections=KEPT_ALIVE)

# An idle connection is dropped before uvicorn's 5 s keep-alive closes it on the server's
# side: a request sent on a connection the server is just closing would fail for nothing.
IDLE_SECONDS = 2.0


class PeerUnreachable(Exception):
    """No answer: not connected, the connection broke, or the timeout passed. The request
    may or may not have reached the peer."""


@dataclass(frozen=True)
class Answer:
    """A peer's whole answer."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive, as aiohttp gives them
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class JsonPeer:
    """Calls to one peer's JSON API over aiohttp, with a client span each when tracing is on.

    The session is made at the first call (aiohttp binds it to the running loop).
    `on_request(method, path)` is awaited before each call (tests count the calls).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        *,
        on_request: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.on_request = on_request
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        if self.on_request is not None:
            await self.on_request(method, path)
        url = self.base_url + path
        headers: dict[str, str] = {}
        with tracing.calling(method, url, headers) as span:
            try:
                async with self._opened().request(
                    method, url, json=json, params=params, headers=headers
                ) as response:
                    answer = Answer(response.status, response.headers, await response.read())
            except (TimeoutError, aiohttp.ClientError) as error:
                raise PeerUnreachable(f"{type(error).__name__}: {error}") from error
            span.set_attribute("http.response.status_code", answer.status_code)
        return answer

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=IDLE_SECONDS),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
