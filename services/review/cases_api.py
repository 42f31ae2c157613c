"""Review's staff API for the queue and one case: what waits for a decision, and all a case
holds (facts, the policy's trail of checks, approvals, claims, history)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.review.deps import AnyStaff, CaseFilter, CasePaging, Queue, RefundId, ReviewApp
from services.review.schemas import CaseList, CaseView
from services.review.views import queue_entry, shown_case
from shared.keyed import answer
from shared.problems import problem_responses
from shared.staff import staff_problem_responses

# Every route is staff's, and answers a query or path it cannot read with a 422.
router = APIRouter(
    prefix="/v1",
    tags=["cases"],
    responses=staff_problem_responses(401, 403) | problem_responses(422),
)


@router.get(
    "/cases",
    response_model=CaseList,
    summary="The review queue, newest first",
)
async def list_cases(
    staff: AnyStaff,
    app: ReviewApp,
    queue: Queue,
    page: CasePaging,
    where: CaseFilter,
    request: Request,
) -> JSONResponse:
    """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
    next (older) page; `ending_before` the first id gives the previous one."""
    now = app.now()
    found = await asyncio.to_thread(queue.page, where, page, now)
    data = [queue_entry(row, now) for row in found.rows]
    return answer(CaseList.of(request, data, found.has_more))


@router.get(
    "/cases/{refund_id}",
    response_model=CaseView,
    summary="One case: facts, assessment trail, approvals, claims, history",
    responses=problem_responses(404),
)
async def get_case(refund_id: RefundId, staff: AnyStaff, app: ReviewApp) -> JSONResponse:
    view = await asyncio.to_thread(lambda: shown_case(app, app.case(refund_id)))
    return answer(view)
