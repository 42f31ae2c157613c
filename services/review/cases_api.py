"""Review's staff API for the queue and one case: what waits for a decision, and all a case
holds (facts, the policy's trail of checks, approvals, claims, history)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.review.deps import AnyStaff, CasePaging, Queue, RefundId, ReviewApp
from services.review.queue import QueueQuery
from services.review.schemas import CaseList, CaseView
from services.review.views import queue_entry, shown_case
from services.review.vocabulary import CaseState, Tier
from shared.keyed import answer
from shared.staff import staff_problem_responses

router = APIRouter(prefix="/v1", tags=["cases"])


@router.get(
    "/cases",
    response_model=CaseList,
    summary="The review queue, newest first",
    responses=staff_problem_responses(401, 403, 422),
)
async def list_cases(
    staff: AnyStaff,
    app: ReviewApp,
    queue: Queue,
    page: CasePaging,
    request: Request,
    tier: Tier | None = None,
    state: CaseState | None = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    overdue: Annotated[
        bool | None, Query(description="true: pending past the deadline; false: the rest")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
    next (older) page; `ending_before` the first id gives the previous one."""
    now = app.now()
    query = QueueQuery(
        page=page,
        tenant=tenant,
        tier=tier,
        state=state,
        assignee=assignee,
        overdue=overdue,
        now=now,
    )
    found = await asyncio.to_thread(queue.page, query)
    body = CaseList(
        url=request.url.path,
        has_more=found.has_more,
        data=[queue_entry(row, now) for row in found.rows],
    )
    return answer(body)


@router.get(
    "/cases/{refund_id}",
    response_model=CaseView,
    summary="One case: facts, assessment trail, approvals, claims, history",
    responses=staff_problem_responses(401, 403, 404),
)
async def get_case(refund_id: RefundId, staff: AnyStaff, app: ReviewApp) -> JSONResponse:
    view = await asyncio.to_thread(lambda: shown_case(app, app.case(refund_id)))
    return answer(view)
