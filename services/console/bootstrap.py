"""The console's composition root: settings, session store, identity provider, catalogs,
pages and the security layers, wired once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from services.console.calls import Connections, TokenRefused
from services.console.deps import NotSignedIn
from services.console.i18n import compile_catalogs
from services.console.middleware import CsrfGuard, SecurityHeaders, ServerSessions
from services.console.pages import (
    admin,
    analytics,
    audit,
    auth,
    case,
    finance,
    finance_claims,
    finance_reconciliation,
    home,
    queue,
    warehouse,
)
from services.console.rendering import Renderer
from services.console.sessions import SessionStore, open_sessions
from services.console.settings import ConsoleSettings
from services.console.signin import Provider
from shared.runtime import Service
from shared.settings import load_settings

STATIC = Path(__file__).parent / "static"
ROUTERS = (
    home.router,
    auth.router,
    queue.router,
    case.router,
    warehouse.router,
    finance.router,
    finance_reconciliation.router,
    finance_claims.router,
    audit.router,
    admin.router,
    analytics.router,
)


def console_app(
    settings: ConsoleSettings,
    sessions: SessionStore,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    provider_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The console's HTTP app. `transports` reach the services in-process (tests); without
    them, their URLs from the settings."""
    connections = Connections(
        settings.service_urls(), timeout=settings.service_timeout_s, transports=transports
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await connections.close()

    http = FastAPI(
        title="Refunds — staff console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    renderer = Renderer(
        compile_catalogs(), default_locale=settings.default_locale, zone=settings.default_zone
    )
    http.state.settings = settings
    http.state.sessions = sessions
    http.state.renderer = renderer
    http.state.provider = Provider(settings, provider_transport)
    http.state.connections = connections
    for router in ROUTERS:
        http.include_router(router)
    http.mount("/static", StaticFiles(directory=STATIC), name="static")

    @http.exception_handler(NotSignedIn)
    @http.exception_handler(TokenRefused)
    async def sign_in_first(request: Request, error: Exception) -> Response:
        request.session.clear()
        back = request.url.path if request.method == "GET" else "/"
        if request.method == "GET" and request.url.query:
            back += "?" + request.url.query
        login = "/auth/login?" + urlencode({"next": back})
        if request.headers.get("hx-request") == "true":
            # A boosted request cannot follow a redirect to the provider (another origin):
            # htmx navigates the whole page there instead.
            return Response(status_code=200, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    async def refused(scope: Scope, receive: Receive, send: Send) -> None:
        """A POST without the session's CSRF token: a 403 page, and nothing ran."""
        page = renderer.page(Request(scope, receive), "forbidden.html", 403)
        await page(scope, receive, send)

    http.add_middleware(CsrfGuard, refused=refused)
    http.add_middleware(
        ServerSessions,
        store=sessions,
        secure=settings.secure_cookies,
        max_age_seconds=settings.session_hours * 3600,
    )
    http.add_middleware(SecurityHeaders, issuer=settings.oidc_issuer)
    return http


def build(settings: ConsoleSettings | None = None) -> Service:
    settings = settings or load_settings(ConsoleSettings)
    sessions = open_sessions(settings)
    http = console_app(settings, sessions)
    return Service("console", settings, http, [], close=getattr(sessions, "close", lambda: None))
