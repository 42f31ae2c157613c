"""Review's staff API for policy versions: every version published, the document in force,
and publishing a new one (admins)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from services.review.deps import PolicyReader, Publishing, ReviewApp
from services.review.policy_document import Policy
from services.review.schemas import PolicyVersionList, PolicyVersionView
from services.review.views import version_view
from shared.keyed import answer
from shared.problems import not_found, problem_responses
from shared.staff import staff_problem_responses

router = APIRouter(prefix="/v1", tags=["policies"], responses=staff_problem_responses(401, 403))


@router.get(
    "/policies",
    response_model=PolicyVersionList,
    summary="Every published policy version, oldest first",
)
async def list_policies(staff: PolicyReader, app: ReviewApp) -> JSONResponse:
    versions = await asyncio.to_thread(app.policy_versions)
    current = versions[-1]["version"] if versions else None
    body = PolicyVersionList(
        current=current, data=[version_view(entry, current) for entry in versions]
    )
    return answer(body)


@router.get("/policies/current", response_model=Policy, summary="The policy document in force")
async def current_policy(staff: PolicyReader, app: ReviewApp) -> JSONResponse:
    """The document as published; change `version` and the rules, then POST it back."""
    policy = await asyncio.to_thread(lambda: app.policy)
    return JSONResponse(policy.model_dump(mode="json", by_alias=True))


@router.get(
    "/policies/{version}",
    response_model=Policy,
    summary="The document of one published version",
    responses=problem_responses(404),
)
async def policy_version(
    version: Annotated[str, Path(min_length=1, max_length=100)], staff: PolicyReader, app: ReviewApp
) -> JSONResponse:
    """The document exactly as it was published under `version` (for reading and diffing)."""
    versions = await asyncio.to_thread(app.policy_versions)
    found = next((entry for entry in versions if entry["version"] == version), None)
    if found is None:
        raise not_found("policy version", f"No policy version {version} was published.")
    return JSONResponse(found["document"])


@router.post(
    "/policies",
    status_code=201,
    response_model=PolicyVersionView,
    summary="Publish a new policy version",
    responses=problem_responses(409, 422),
)
async def publish_policy(body: Policy, staff: Publishing, app: ReviewApp) -> JSONResponse:
    """The document is validated as a whole (422 names each bad field); a version is
    published once (409), and is in force for every assessment from then on."""
    published, replayed = await asyncio.to_thread(
        app.publish_policy_once, body, by=staff.sub, keyed=staff.keyed(body)
    )
    return answer(version_view(published, body.version), 201, replayed)
