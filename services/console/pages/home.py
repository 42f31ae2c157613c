"""The start page, the language switch and the health checks."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.console.deps import Pages, Settings
from services.console.pages.auth import local_path
from services.console.vocabulary import LOCALE_COOKIE, LOCALES

router = APIRouter()
LOCALE_COOKIE_SECONDS = 400 * 24 * 3600  # browsers cap cookies at 400 days


@router.get("/")
async def home(request: Request, pages: Pages) -> Response:
    if not request.session.get("access_token"):
        return pages.page(request, "signin.html")
    if set(request.session.get("roles") or ()) & {"reviewer", "senior_reviewer"}:
        return RedirectResponse("/queue", status_code=303)
    return pages.page(request, "home.html")


@router.post("/language")
async def language(
    request: Request,
    settings: Settings,
    locale: Annotated[str, Form(max_length=10)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Remembered in the session and, for the next sign-in, in a long-lived cookie."""
    chosen = locale if locale in LOCALES else settings.default_locale
    request.session["locale"] = chosen
    answer = RedirectResponse(local_path(next), status_code=303)
    answer.set_cookie(
        LOCALE_COOKIE,
        chosen,
        max_age=LOCALE_COOKIE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return answer


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Ready when the session store answers: pages need it before anything else."""
    try:
        await asyncio.to_thread(request.app.state.sessions.load, "readiness-probe")
    except Exception as error:  # any store failure means not ready, named
        return JSONResponse({"status": "unavailable", "sessions": type(error).__name__}, 503)
    return JSONResponse({"status": "ready"})
