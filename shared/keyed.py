"""Idempotency-Key on the HTTP side: the header, the keyed request, and the (replayed) answer.

Every POST of every service takes the header with Stripe's semantics (see
shared/idempotency.py for how a key is claimed with the command's own events).
"""

# No `from __future__ import annotations`: FastAPI reads the header alias at runtime.

from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.http import Problem
from shared.idempotency import KeyedRequest, fingerprint
from shared.problems import invalid_fields

IDEMPOTENCY_HELP = (
    "Stripe-style: a retry with the same key and body replays the first answer (with"
    " `Idempotent-Replayed: true`); the same key with another body or endpoint is a 409."
    " Keys belong to the caller (the platform, or the staff person) and are kept 24 h."
)
IdempotencyKey = Annotated[
    str | None,
    Header(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$", description=IDEMPOTENCY_HELP),
]


def keyed(
    scope: str, key: str | None, request: Request, body: BaseModel | None
) -> KeyedRequest | None:
    """The request under its key, within `scope` (a tenant or a staff person); None: no key."""
    if key is None:
        return None
    dumped = body.model_dump(mode="json", by_alias=True) if body is not None else None
    return KeyedRequest(scope, key, fingerprint(request.method, request.url.path, dumped))


def answer(view: BaseModel, status: int = 200, replayed: bool = False) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(view.model_dump(mode="json"), status, headers=headers)


def idempotency_conflict() -> Problem:
    return Problem(
        409,
        "Idempotency key reused",
        "This Idempotency-Key was used for a different request (another body or endpoint).",
        kind="idempotency-conflict",
    )


def invalid(field: str, code: str, message: str) -> Problem:
    """A 422 problem naming one bad field (validation of several comes from the schema)."""
    return invalid_fields([{"field": field, "code": code, "message": message}])


def one_cursor(starting_after: str | None, ending_before: str | None) -> None:
    """Stripe's cursors page one way at a time: both at once is a 422."""
    if starting_after and ending_before:
        raise invalid(
            "query.ending_before", "exclusive", "use starting_after or ending_before, not both"
        )
