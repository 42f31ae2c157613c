"""Calls to the four services' staff APIs on behalf of the signed-in person: their own access
token as the bearer, never a console identity, so each service enforces its rules (roles,
separation of duties, idempotency) and records the action under the person's name.

A refusal (any 4xx problem+json) comes back as `Refused`, for the page to explain; nothing is
retried, so an action is never sent twice without its Idempotency-Key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

SERVICES = ("intake", "review", "payout", "notify")


@dataclass
class Refused(Exception):
    """A service said no: its status and problem document (RFC 9457)."""

    service: str
    status: int
    problem: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.problem.get("errors")
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []

    @property
    def kind(self) -> str:
        """The problem's type, its last path segment (`.../problems/not-assignee` → …)."""
        return str(self.problem.get("type", "")).rstrip("/").rsplit("/", 1)[-1]


class TokenRefused(Exception):
    """A service refused the person's token itself (401: revoked, or from a provider it does
    not trust): the session ends and the person signs in again; nothing was done."""


@dataclass
class Unreachable(Exception):
    """A service did not answer (or answered 5xx): the page says which, nothing is retried."""

    service: str
    detail: str


class Connections:
    """One pooled HTTP client per service for the console's lifetime, shared by every
    person's calls. A client per request cost ~21 CPU-ms each (httpx builds a TLS context
    for every client) plus a new TCP connection: most of the queue page's server time
    (bench/console_queue.py). The person's token goes on each request, never on the client,
    and the clients keep no cookies, so nothing of one person's call reaches another's."""

    def __init__(
        self,
        urls: dict[str, str],
        *,
        timeout: float,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._urls = urls
        self._timeout = timeout
        self._transports = transports or {}
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, service: str) -> httpx.AsyncClient:
        if service not in self._clients:
            self._clients[service] = httpx.AsyncClient(
                base_url=self._urls[service],
                timeout=self._timeout,
                transport=self._transports.get(service),
                follow_redirects=False,
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            )
        return self._clients[service]

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class Services:
    """One person's view of the services, for one request: the shared connections, with
    their own access token as the bearer."""

    def __init__(self, connections: Connections, token: str) -> None:
        self._connections = connections
        self._authorization = {"Authorization": f"Bearer {token}"}

    async def get(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return await self._send(service, "GET", path, params=clean)

    async def post(self, service: str, path: str, body: Any, *, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        return await self._send(service, "POST", path, json=body, headers=headers)

    async def _send(
        self,
        service: str,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        client = self._connections.client(service)
        headers = {**self._authorization, **(headers or {})}
        try:
            response = await client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise Unreachable(service, type(error).__name__) from None
        if response.status_code >= 500:
            raise Unreachable(service, f"HTTP {response.status_code}")
        if response.status_code == 401:
            raise TokenRefused(service)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise Refused(
                service, response.status_code, problem if isinstance(problem, dict) else {}
            )
        return response.json()
