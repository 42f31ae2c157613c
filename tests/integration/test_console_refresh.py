"""Two requests of one session after its access token expired, at once, against the sandbox
identity provider (which rotates refresh tokens: each refresh spends the one it was given):
both are answered and the person stays signed in — whether the two reach one console process
(single-flight refresh) or two sharing the session table (the refused one reads the other's
stored tokens)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import sandbox.identity.keys
import services.console.signin
from services.console.bootstrap import console_app
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from tests.integration.test_console import CONSOLE_URL
from tests.support.console_stack import Stack, console_stack

ACCESS_SECONDS = 2  # the provider's access-token lifetime in these tests
COOKIE = "refunds_console"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setattr(sandbox.identity.keys, "ACCESS_TTL", ACCESS_SECONDS)
    monkeypatch.setattr(services.console.signin, "REFRESH_MARGIN_SECONDS", 0)
    with console_stack(tmp_path) as made:
        yield made


def signed_in(stack: Stack) -> tuple[TestClient, str, dict[str, Any]]:
    browser = stack.browser("ann", "/queue")
    session_id = browser.cookies.get(COOKIE)
    assert session_id
    stored = stack.console.app.state.sessions.load(session_id)  # type: ignore[attr-defined]
    assert stored is not None and stored["expires_at"] < time.time() + ACCESS_SECONDS + 1
    return browser, session_id, stored


def expire(stored: dict[str, Any]) -> None:
    """Wait until the access token has expired, at the provider and for the console."""
    time.sleep(max(0.0, float(stored["expires_at"]) - time.time()) + 0.2)


async def at_once(*consoles: tuple[Any, str]) -> list[httpx.Response]:
    """GET /queue on each (console app, session id) at the same time."""

    async def one(app: Any, session_id: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=CONSOLE_URL,
            cookies={COOKIE: session_id},
        ) as browser:
            return await browser.get("/queue")

    return list(await asyncio.gather(*(one(app, sid) for app, sid in consoles)))


def still_signed_in(stack: Stack, browser: TestClient, session_id: str) -> dict[str, Any]:
    """The stored session holds the live refresh token: the next expiry refreshes again."""
    stored = stack.console.app.state.sessions.load(session_id)  # type: ignore[attr-defined]
    assert stored is not None, "signed out"
    expire(stored)
    page = browser.get("/queue", follow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))
    after = stack.console.app.state.sessions.load(session_id)  # type: ignore[attr-defined]
    assert after is not None and after["refresh_token"] != stored["refresh_token"]
    return dict(after)


def test_two_requests_refreshing_at_once_in_one_console_both_succeed(stack: Stack) -> None:
    browser, session_id, stored = signed_in(stack)
    expire(stored)
    answers = asyncio.run(at_once((stack.console.app, session_id), (stack.console.app, session_id)))
    assert [a.status_code for a in answers] == [200, 200], [a.headers for a in answers]
    assert all("审核队列" in a.text or "Review queue" in a.text for a in answers)
    after = still_signed_in(stack, browser, session_id)
    assert after["refresh_token"] != stored["refresh_token"]


def test_two_consoles_sharing_the_sessions_refresh_at_once_and_both_succeed(
    stack: Stack, tmp_path: Path
) -> None:
    browser, session_id, stored = signed_in(stack)
    replica = console_app(  # another process over the same session table
        ConsoleSettings(
            env="test", data_dir=tmp_path, oidc_issuer=stack.issuer, console_url=CONSOLE_URL
        ),
        SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
        transports={
            name: httpx.ASGITransport(app=service.http) for name, service in stack.services.items()
        },
    )
    expire(stored)
    answers = asyncio.run(at_once((stack.console.app, session_id), (replica, session_id)))
    assert [a.status_code for a in answers] == [200, 200], [a.headers for a in answers]
    still_signed_in(stack, browser, session_id)


def test_a_refresh_token_the_provider_refuses_still_signs_out(stack: Stack) -> None:
    browser, session_id, stored = signed_in(stack)
    sessions = stack.console.app.state.sessions  # type: ignore[attr-defined]
    sessions.save(session_id, {**stored, "refresh_token": "revoked"}, 3600)
    expire(stored)
    started = time.monotonic()
    again = browser.get("/queue", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/auth/login")
    assert time.monotonic() - started < 5  # waited briefly for another process, no longer
    assert sessions.load(session_id) is None
