"""The dependencies the console's pages declare: the signed-in person, their services, the
renderer and the identity provider (the composition root puts them on `app.state`)."""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request

from services.console.calls import Services
from services.console.middleware import SESSION_ID_KEY
from services.console.rendering import Renderer
from services.console.sessions import SessionStore
from services.console.settings import ConsoleSettings
from services.console.signin import Provider
from shared.http import on_state


class NotSignedIn(Exception):
    """No session, or one whose token cannot be refreshed: the person signs in (again)."""


@dataclass(frozen=True)
class Person:
    sub: str  # the provider's stable id
    username: str  # what the services record as the actor
    name: str  # for display
    roles: frozenset[str]


async def _token(request: Request) -> str:
    provider: Provider = request.app.state.provider
    session_id: str | None = request.scope.get(SESSION_ID_KEY)
    token = await provider.fresh_token(
        request.session,
        session_id,
        reread=None if session_id is None else partial(_reread, request, session_id),
        save=None if session_id is None else partial(_save, request, session_id),
    )
    if token is None:
        request.session.clear()
        raise NotSignedIn
    return token


async def _reread(request: Request, session_id: str) -> dict[str, Any] | None:
    store: SessionStore = request.app.state.sessions
    return await asyncio.to_thread(store.load, session_id)


async def _save(request: Request, session_id: str, session: dict[str, Any]) -> None:
    store: SessionStore = request.app.state.sessions
    settings: ConsoleSettings = request.app.state.settings
    await asyncio.to_thread(store.save, session_id, dict(session), settings.session_hours * 3600)


async def _person(request: Request, token: Annotated[str, Depends(_token)]) -> Person:
    session = request.session
    return Person(
        sub=str(session.get("sub", "")),
        username=str(session.get("username", "")),
        name=str(session.get("name", "")),
        roles=frozenset(session.get("roles") or ()),
    )


async def _services(request: Request, token: Annotated[str, Depends(_token)]) -> Services:
    return Services(request.app.state.connections, token)


SignedIn = Annotated[Person, Depends(_person)]
Calls = Annotated[Services, Depends(_services)]
Pages = Annotated[Renderer, on_state("renderer")]
IdP = Annotated[Provider, on_state("provider")]
Settings = Annotated[ConsoleSettings, on_state("settings")]
