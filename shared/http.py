"""HTTP plumbing every service shares: RFC 9457 problem documents, their OpenAPI
description, a request-body size limit and health endpoints.

A service calls `install_problem_handlers(app)` once; routes then list the problems
they answer with `responses=problem_responses(401, 404)`. Every error, the framework's
own included, is answered as `application/problem+json` and documented as such.
Routes reach what the composition root put on `http.state` through `on_state(name)`.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.health import Health
from shared.idempotency import IdempotencyMismatch
from shared.paging import UnknownCursor, bad_query
from shared.problems import (
    PROBLEM_JSON,
    SCHEMAS,
    Problem,
    ProblemDocument,
    ProblemMap,
    idempotency_conflict,
    problem_response,
    problem_responses,
)
from shared.request_stamp import RequestStamp

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "ProblemMap",
    "health_router",
    "install_problem_handlers",
    "on_state",
    "problem_response",
    "problem_responses",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 256 * 1024
MAX_FIELD_ERRORS = 100


def problem_component_schemas() -> dict[str, Any]:
    """ProblemDocument and the models it refers to, as OpenAPI components."""
    schema = ProblemDocument.model_json_schema(
        ref_template=SCHEMAS + "{model}", mode="serialization"
    )
    found: dict[str, Any] = schema.pop("$defs", {})
    found[ProblemDocument.__name__] = schema
    return found


def _is_framework_422(response: Mapping[str, Any]) -> bool:
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == SCHEMAS + "HTTPValidationError")


def _json_body(operation: Mapping[str, Any]) -> bool:
    content = operation.get("requestBody", {}).get("content", {})
    return any(media == "application/json" or media.endswith("+json") for media in content)


def _references(document: Any, name: str) -> bool:
    if isinstance(document, dict):
        if document.get("$ref") == SCHEMAS + name:
            return True
        return any(_references(value, name) for value in document.values())
    if isinstance(document, list):
        return any(_references(value, name) for value in document)
    return False


def with_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Document what the shared handlers answer, on every operation of `openapi`:

    - FastAPI's own 422 (`HTTPValidationError`, application/json) becomes the problem 422;
    - an operation with a JSON body also answers 400, 413, 415 and 422;
    - every operation may answer 500;
    - ProblemDocument is added to components/schemas.

    Responses a route documents itself are kept. Idempotent."""
    for path_item in openapi.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses and _is_framework_422(responses["422"]):
                responses["422"] = problem_response(422)
            statuses = [500]
            if _json_body(operation):
                statuses = [400, 413, 415, 422, 500]
            for status in statuses:
                responses.setdefault(str(status), problem_response(status))
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in problem_component_schemas().items():
        schemas.setdefault(name, schema)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas:
            rest = {key: value for key, value in schemas.items() if key != unused}
            if not _references(openapi.get("paths", {}), unused) and not _references(rest, unused):
                del schemas[unused]
    return openapi


def document_problems(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) describe errors as problem documents."""
    if getattr(app, "_problems_documented", False):
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app._problems_documented = True  # type: ignore[attr-defined]


# --- Request body limit ---------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int, instance: str | None) -> JSONResponse:
    return Problem(
        413,
        "Request body too large",
        f"The request body exceeds the limit of {limit} bytes.",
        kind="body-too-large",
        headers={"Connection": "close"},
    ).response(instance)


class BodyLimit:
    """Pure ASGI middleware: answers 413 problem+json when a request body is larger than
    `max_bytes`, by its Content-Length up front or, for a streamed (chunked) body, as soon
    as the chunks read so far pass the limit. It never buffers the body itself."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app makes of the cut-off body, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        await _too_large(self.max_bytes, str(path) if path else None)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def install_body_limit(app: FastAPI, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_bytes)


# --- Exception handlers ---------------------------------------------------------------


def _text(value: object, limit: int) -> str:
    """str(value), whatever value is, never longer than `limit`."""
    try:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    """One entry per bad field: its dotted path, pydantic's code and a message."""
    found = []
    for item in error.errors():
        if not isinstance(item, Mapping):
            found.append({"field": "body", "code": "invalid", "message": _text(item, 500)})
            continue
        loc = item.get("loc", ())
        parts: Iterable[object] = loc if isinstance(loc, list | tuple) else (loc,)
        location = [_text(part, 100) for part in parts]
        if location and location[0] == "body":
            location = location[1:]
        found.append(
            {
                "field": _text(".".join(location), 300) or "body",
                "code": _text(item.get("type", "invalid"), 100),
                "message": _text(item.get("msg", "invalid value"), 500),
            }
        )
    return found


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _validation_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = field_errors(error)
    instance = request.url.path
    if any(entry["code"] == "json_invalid" for entry in errors):
        return Problem(
            400, "Malformed JSON", "The body is not valid JSON.", kind="malformed-json"
        ).response(instance)
    content_type = request.headers.get("content-type")
    whole_body = any(entry["field"] == "body" for entry in errors)
    if whole_body and error.body not in (None, b"") and not _is_json(content_type):
        sent = f"`{_text(content_type, 100)}`" if content_type else "no Content-Type"
        return Problem(
            415,
            "Unsupported media type",
            f"Send the body as application/json (got {sent}).",
            kind="unsupported-media-type",
        ).response(instance)
    detail = f"{len(errors)} field(s) failed validation."
    if len(errors) > MAX_FIELD_ERRORS:
        detail += f" The first {MAX_FIELD_ERRORS} are listed."
    problem = Problem(
        422, "Invalid request", detail, kind="validation", errors=errors[:MAX_FIELD_ERRORS]
    )
    return problem.response(instance)


async def _problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response(request.url.path)


_UNREADABLE_BODY = "There was an error parsing the body"
_HTTP_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


async def _http_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and error.detail == _UNREADABLE_BODY:
        # FastAPI's answer to a JSON body that is not even text (e.g. invalid UTF-8)
        return Problem(
            400, "Malformed JSON", "The body is not valid UTF-8 JSON.", kind="malformed-json"
        ).response(request.url.path)
    title = _HTTP_TITLES.get(error.status_code, "HTTP error")
    headers = dict(error.headers) if error.headers else None
    return Problem(
        error.status_code,
        title,
        _text(error.detail, 500),
        kind=f"http-{error.status_code}",
        headers=headers,
    ).response(request.url.path)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    problem = Problem(
        500, "Internal error", "The server failed; the request may be retried.", kind="internal"
    )
    return problem.response(request.url.path)


async def _unknown_cursor(request: Request, error: Exception) -> JSONResponse:
    # The read model knows the id it could not find; the request says which cursor it was.
    name = "ending_before" if request.query_params.get("ending_before") else "starting_after"
    problem = bad_query(name, "unknown_cursor", f"no such id {error}")
    return problem.response(request.url.path)


# Answered alike by every service: its own `problems.py` maps only its own errors.
SHARED_PROBLEMS: ProblemMap = {IdempotencyMismatch: lambda _: idempotency_conflict()}


def _mapped(to_problem: Callable[[Any], Problem]) -> Callable[..., Any]:
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return to_problem(error).response(request.url.path)

    return handler


def install_problem_handlers(
    app: FastAPI,
    *,
    problems: ProblemMap | None = None,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Answer every error as application/problem+json, document them so in OpenAPI,
    and refuse bodies over `max_body_bytes` with 413 (None: no limit).

    `problems` maps the service's domain errors to problems (its `problems.py`), on top of
    `SHARED_PROBLEMS`: routes let them through and this is the one place they become
    answers. Starlette picks the handler of the nearest class in an error's MRO, so a
    subclass may be mapped apart.

    Also gives every request its audit stamp and `Request-Id` (shared.request_stamp)."""
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(UnknownCursor, _unknown_cursor)
    for error, to_problem in {**SHARED_PROBLEMS, **(problems or {})}.items():
        app.add_exception_handler(error, _mapped(to_problem))
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(Exception, _unexpected)
    if max_body_bytes is not None:
        install_body_limit(app, max_body_bytes)
    app.add_middleware(RequestStamp)
    document_problems(app)


def on_state(name: str) -> Any:
    """`Depends(...)` on what the composition root put on `http.state` as `name`, for a
    service's deps.py: `Index = Annotated[RefundIndex, on_state("index")]`."""

    async def get(request: Request) -> Any:  # no thread: it only reads the state
        return getattr(request.app.state, name)

    get.__name__ = name
    return Depends(get)


# --- Health ---------------------------------------------------------------------------


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    store: Literal["ok", "unreachable"]
    broker: str = Field(examples=["ok", "waiting for relay"])
    draining: bool = Field(
        default=False, description="true once the process is shutting down (SIGTERM)"
    )


def health_router(store_ok: Callable[[], bool], health: Health, required: list[str]) -> APIRouter:
    """`/healthz`: the process answers. `/readyz`: the store answers and the broker parts work."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Liveness)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready yet"}},
    )
    async def readyz() -> JSONResponse:
        store = await asyncio.to_thread(store_ok)
        broker_down = [
            part for part in required if health.expects(part) and not health.parts.get(part)
        ]
        ready = store and not broker_down and not health.draining
        body = {
            "status": "ready" if ready else "not_ready",
            "store": "ok" if store else "unreachable",
            "broker": "ok" if not broker_down else f"waiting for {', '.join(broker_down)}",
            "draining": health.draining,
        }
        return JSONResponse(body, 200 if body["status"] == "ready" else 503)

    return router
