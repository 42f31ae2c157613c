"""RFC 9457 problem documents: the error every service answers with, and its OpenAPI shape.

Routes raise `Problem` (or let a domain error through: each service maps its domain
errors to problems once, in its `problems.py`, and `shared.http` installs the map).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://refunds.example.com/problems/"
SCHEMAS = "#/components/schemas/"


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


# --- The documented shape -------------------------------------------------------------


class FieldError(BaseModel):
    """One field that failed validation."""

    field: str = Field(description="dotted path into the request; `body` for the whole body")
    code: str = Field(description="stable machine-readable reason, e.g. `missing`")
    message: str = Field(description="human-readable explanation")


class ProblemDocument(BaseModel):
    """An RFC 9457 problem document: every error this API answers has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + "validation",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "1 field(s) failed validation.",
                    "instance": "/v1/refunds",
                    "errors": [
                        {
                            "field": "reason",
                            "code": "literal_error",
                            "message": "Input should be 'damaged', 'quality_defect' or 'other'",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(description="URI naming the kind of problem; stable, safe to branch on")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code, repeated")
    detail: str = Field(description="what went wrong with this request")
    instance: str | None = Field(None, description="the path of the request that failed")
    errors: list[FieldError] | None = Field(None, description="one entry per invalid field")


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: the body is not valid JSON or could not be read.",
    401: "Missing or invalid API key (`Authorization: Bearer <key>`).",
    403: "The API key may not do this.",
    404: "No such resource for this tenant.",
    409: "Conflict with the resource's current state, or an Idempotency-Key reused "
    "with a different body.",
    413: "The request body is larger than the limit.",
    415: "The body is not sent as `application/json`.",
    422: "The request is well-formed but invalid; `errors` names each bad field.",
    429: "Too many requests; slow down and retry later.",
    500: "The server failed; the request may be retried.",
    503: "The service is temporarily unavailable; retry later.",
}

_RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the authentication scheme to use: `Bearer`",
            "schema": {"type": "string"},
        }
    },
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object for one problem status."""
    response: dict[str, Any] = {
        "description": description or PROBLEM_DESCRIPTIONS.get(status, "Problem"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "ProblemDocument"}}},
    }
    if status in _RESPONSE_HEADERS:
        response["headers"] = copy.deepcopy(_RESPONSE_HEADERS[status])
    return response


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting each status as an application/problem+json
    ProblemDocument, e.g. `@router.get(..., responses=problem_responses(401, 404))`.

    The ProblemDocument schema itself is added to components/schemas by
    `document_problems` (which `install_problem_handlers` installs)."""
    return {status: problem_response(status) for status in statuses}


# A service's map from its domain errors to the problem each one is; installed once per app.
ProblemMap = Mapping[type[Exception], Callable[[Any], Problem]]


# --- The problems every service answers alike -------------------------------------------


def invalid_fields(errors: list[dict[str, str]]) -> Problem:
    """A 422 problem naming every bad field in `errors` (field, code, message)."""
    return Problem(
        422,
        "Invalid request",
        f"{len(errors)} field(s) failed validation.",
        kind="validation",
        errors=errors,
    )


def invalid(field: str, code: str, message: str) -> Problem:
    """A 422 problem naming one bad field (validation of several comes from the schema)."""
    return invalid_fields([{"field": field, "code": code, "message": message}])


def unauthorized(detail: str) -> Problem:
    """A 401: no valid bearer credential (an API key, or a staff token)."""
    return Problem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )


def not_found(what: str, detail: str) -> Problem:
    """A 404: no such `what` for this caller (another tenant's looks the same: never a 403)."""
    return Problem(404, f"No such {what}", detail, kind="not-found")


def not_allowed(code: str, message: str) -> Problem:
    """A 409: the resource's state does not allow the command; `type` names the rule's code."""
    return Problem(409, "Not allowed in this state", message, kind=code.replace("_", "-"))


def idempotency_conflict() -> Problem:
    """A 409: the Idempotency-Key was first used for another request."""
    return Problem(
        409,
        "Idempotency key reused",
        "This Idempotency-Key was used for a different request (another body or endpoint).",
        kind="idempotency-conflict",
    )
