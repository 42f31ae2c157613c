"""HTTP plumbing every service shares: RFC 9457 problem documents and health endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.health import Health

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://refunds.example.com/problems/"


class Problem(Exception):
    """An error a client can act on, answered as application/problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str = "error",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = headers

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, self.status, headers=self.headers, media_type=PROBLEM_JSON)


def field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    """One entry per bad field: its dotted path, pydantic's code and a message."""
    found = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] in {"body", "query", "path", "header"}:
            location = location[1:] if location[0] == "body" else location
        found.append(
            {
                "field": ".".join(location) or "body",
                "code": str(item.get("type", "invalid")),
                "message": str(item.get("msg", "invalid value")),
            }
        )
    return found


async def _validation_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = field_errors(error)
    if any(entry["code"] == "json_invalid" for entry in errors):
        return Problem(
            400, "Malformed JSON", "The body is not valid JSON.", kind="malformed-json"
        ).response(request.url.path)
    detail = f"{len(errors)} field(s) failed validation."
    problem = Problem(422, "Invalid request", detail, kind="validation", errors=errors)
    return problem.response(request.url.path)


async def _problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response(request.url.path)


async def _http_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
    headers = dict(error.headers) if error.headers else None
    return Problem(
        error.status_code,
        title,
        str(error.detail),
        kind=f"http-{error.status_code}",
        headers=headers,
    ).response(request.url.path)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    problem = Problem(
        500, "Internal error", "The server failed; the request may be retried.", kind="internal"
    )
    return problem.response(request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(Exception, _unexpected)


def health_router(store_ok: Callable[[], bool], health: Health, required: list[str]) -> APIRouter:
    """`/healthz`: the process answers. `/readyz`: the store answers and the broker parts work."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        store = await asyncio.to_thread(store_ok)
        broker_down = [part for part in required if not health.parts.get(part, False)]
        body = {
            "status": "ready" if store and not broker_down else "not_ready",
            "store": "ok" if store else "unreachable",
            "broker": "ok" if not broker_down else f"waiting for {', '.join(broker_down)}",
        }
        return JSONResponse(body, 200 if body["status"] == "ready" else 503)

    return router
