"""Intake's staff routes for platform API keys (admins): list, issue, revoke — what the
`refunds api-keys` CLI does on the store, over HTTP for the staff console.

An issued key is answered once and never stored (only its hash), so a repeated request with
the same Idempotency-Key cannot show it again: it is refused (409) instead of issuing a
second key (the key's record remembers the answer, as for every other command)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from datetime import datetime
from typing import Annotated, Any

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from services.intake.deps import IntakeApp, KeyAdmin, KeyCommand
from services.intake.key_index import list_keys, revoke_key
from services.intake.tenants import MAX_LABEL_LENGTH, TENANT_NAME, ApiKey, UnknownApiKey, new_key
from shared.auth import ApiKeys
from shared.idempotency import Outcome
from shared.problems import Problem, not_found, problem_responses
from shared.schemas import Strict, example
from shared.staff import staff_problem_responses

router = APIRouter(
    prefix="/v1/admin/api-keys",
    tags=["api keys"],
    responses=staff_problem_responses(401, 403),
)

KEY_EXAMPLE: dict[str, Any] = {
    "prefix": "sk_Ab3dE5fG7",
    "tenant": "acme",
    "label": "checkout",
    "created": "2026-11-01T09:00:00Z",
    "revoked": None,
}


class ApiKeyView(BaseModel):
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    tenant: str
    label: str
    created: datetime
    revoked: datetime | None

    model_config = example(KEY_EXAMPLE)


class ApiKeyList(BaseModel):
    model_config = example({"object": "list", "data": [KEY_EXAMPLE]})

    object: str = "list"
    data: list[ApiKeyView]


class IssueKey(Strict):
    model_config = example({"tenant": "acme", "label": "checkout"})

    tenant: str = Field(pattern=TENANT_NAME.pattern, examples=["acme"])
    label: str = Field("", max_length=MAX_LABEL_LENGTH, examples=["checkout"])


class IssuedKey(ApiKeyView):
    model_config = example({**KEY_EXAMPLE, "key": "sk_Ab3dE5fG7hIjKlMnOpQrStUvWxYz0123456789abcd"})

    key: str = Field(description="the key itself: shown in this answer only, never again")


class RevokeKey(Strict):
    model_config = example({"reason": "leaked in a log"})

    reason: str = Field(min_length=1, max_length=500, examples=["leaked in a log"])


@router.get("", response_model=ApiKeyList, summary="Every platform API key (prefixes only)")
async def keys(
    staff: KeyAdmin,
    app: IntakeApp,
    tenant: Annotated[str | None, Query(pattern=TENANT_NAME.pattern)] = None,
) -> ApiKeyList:
    found = await asyncio.to_thread(list_keys, app, tenant)
    return ApiKeyList(data=[ApiKeyView.model_validate(row) for row in found])


@router.post(
    "",
    status_code=201,
    response_model=IssuedKey,
    summary="Issue a key to a tenant; the key is in this answer only",
    responses=problem_responses(409, 422),
)
async def issue(body: IssueKey, admin: KeyCommand, app: IntakeApp) -> IssuedKey:
    """A repeated request with the same Idempotency-Key issues no second key, and cannot show
    the first again (only its hash is stored): 409 naming its prefix."""
    shown: list[str] = []

    def attempt() -> tuple[Outcome, list[Aggregate]]:
        stored, key = new_key(body.tenant, label=body.label, actor=f"staff:{admin.sub}")
        shown[:] = [key]
        return Outcome(201, stored.id, stored.version), [stored]

    stored, replayed = await asyncio.to_thread(app.execute_once, admin.keyed(body), attempt, ApiKey)
    if replayed:
        raise Problem(
            409,
            "Key already issued",
            f"This request already issued key {stored.prefix}; a key is shown once.",
            kind="already_issued",
        )
    return IssuedKey(**stored.summary(), key=shown[0])


@router.post(
    "/{prefix}/revoke",
    response_model=ApiKeyView,
    summary="Revoke a key for good (revoking again changes nothing)",
    responses=problem_responses(404, 422),
)
async def revoke(
    prefix: Annotated[str, Path(min_length=4, max_length=64)],
    body: RevokeKey,
    admin: KeyCommand,
    app: IntakeApp,
    request: Request,
) -> ApiKeyView:
    """The key is refused from the very next request to this process (its cached answer is
    dropped); other intake processes refuse it within their cache's TTL (shared/auth.py)."""
    keys: ApiKeys = request.app.state.api_keys
    try:
        summary = await asyncio.to_thread(
            revoke_key,
            app,
            prefix,
            actor=f"staff:{admin.sub}",
            reason=body.reason,
            forget=keys.forget,
        )
    except UnknownApiKey as error:
        raise not_found("API key", str(error)) from None
    return ApiKeyView.model_validate(summary)
