"""The console's ASGI layers: security headers on every answer, the server-side session,
and the CSRF check of every POST (before any route sees it)."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console.sessions import SessionStore, new_session_id
from services.console.vocabulary import CSRF_FIELD, SESSION_COOKIE

ROTATE = "_rotate"  # set in a session to give it a new id (on sign-in: no session fixation)
SESSION_ID_KEY = "session_id"  # the scope's stored session id (None for a new session)
CSRF_HEADER = b"x-csrf-token"
MAX_FORM_BYTES = 1_000_000
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{40,64}")


def security_headers(issuer: str) -> list[tuple[bytes, bytes]]:
    """No inline script or style, no framing; forms may post here and sign-out may go on to
    the provider."""
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
        f"frame-ancestors 'none'; form-action 'self' {issuer.rstrip('/')}"
    )
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
    ]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, issuer: str) -> None:
        self.app = app
        self.headers = security_headers(issuer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers[name.decode()] = value.decode()
            await send(message)

        await self.app(scope, receive, with_headers)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 - a malformed cookie header is no session
                continue
            if name in jar:
                return jar[name].value
    return None


class ServerSessions:
    """`request.session` backed by a SessionStore: loaded before the route, saved (or
    deleted, when emptied) as the answer starts. The cookie holds only the random id."""

    def __init__(
        self, app: ASGIApp, store: SessionStore, *, secure: bool, max_age_seconds: int
    ) -> None:
        self.app = app
        self.store = store
        self.secure = secure
        self.max_age = max_age_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = _cookie(scope, SESSION_COOKIE)
        if session_id is not None and not SESSION_ID.fullmatch(session_id):
            session_id = None  # not one we issued (ids are random URL-safe text)
        data = await asyncio.to_thread(self.store.load, session_id) if session_id else None
        if data is None:
            session_id, data = None, {}
        before = json.dumps(data, sort_keys=True)
        scope["session"] = data
        scope[SESSION_ID_KEY] = session_id  # a token refresh shares its result by it

        async def saving(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await self._persist(scope["session"], session_id, before)
                if cookie is not None:
                    MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, saving)

    async def _persist(
        self, session: dict[str, Any], session_id: str | None, before: str
    ) -> str | None:
        rotate = bool(session.pop(ROTATE, False))
        if not session:
            if session_id is None:
                return None
            await asyncio.to_thread(self.store.delete, session_id)
            return self._set_cookie("", max_age=0)
        if session_id is not None and not rotate and json.dumps(session, sort_keys=True) == before:
            return None
        if rotate and session_id is not None:
            await asyncio.to_thread(self.store.delete, session_id)
            session_id = None
        fresh = session_id is None
        session_id = session_id or new_session_id()
        await asyncio.to_thread(self.store.save, session_id, session, self.max_age)
        return self._set_cookie(session_id, max_age=self.max_age) if fresh else None

    def _set_cookie(self, value: str, *, max_age: int) -> str:
        parts = [f"{SESSION_COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
        parts.append("SameSite=Lax")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


class CsrfGuard:
    """Every POST carries the session's CSRF token (form field `csrf_token`, or the
    X-CSRF-Token header for htmx); otherwise a 403 page, and no route runs."""

    def __init__(self, app: ASGIApp, refused: ASGIApp) -> None:
        self.app = app
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM_BYTES:
                await self.refused(scope, _replay(b""), send)
                return
        expected = scope.get("session", {}).get("csrf")
        sent = await _sent_token(scope, body)
        if not expected or not hmac.compare_digest(sent, str(expected)):
            await self.refused(scope, _replay(body), send)
            return
        await self.app(scope, _replay(body), send)


async def _sent_token(scope: Scope, body: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == CSRF_HEADER:
            return str(value.decode("latin-1"))
    content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
    if content_type.startswith(b"application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [])
        return values[0] if values else ""
    if content_type.startswith(b"multipart/form-data"):  # a form with a file (a settlement CSV)
        try:
            form = await Request(scope, _replay(body)).form(max_files=1, max_fields=50)
        except (MultiPartException, ValueError):
            return ""  # a body that is no form is refused like a missing token
        try:
            token = form.get(CSRF_FIELD)
            return token if isinstance(token, str) else ""
        finally:
            await form.close()
    return ""


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
