"""Intake's staff read of one refund: what the console's case page shows beside review's case
(the order, its lines, the customer's contact unless erased). Any tenant's refund; the
reader is named in the request's audit stamp by the staff dependency, like every staff call."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.intake.application import IntakeApplication
from services.intake.deps import IntakeApp, RefundId, StaffReader
from services.intake.staff_schemas import StaffRefundView, order_view
from services.intake.views import refund_view
from shared.keyed import answer
from shared.problems import problem_responses
from shared.staff import staff_problem_responses

router = APIRouter(
    prefix="/v1/staff",
    tags=["staff"],
    responses=staff_problem_responses(401, 403) | problem_responses(404),
)


def staff_refund_view(app: IntakeApplication, refund_id: str) -> StaffRefundView:
    """Reads the store and the keystore: call it off the event loop."""
    refund = app.refund_for_staff(refund_id)
    platform = refund_view(refund, app.keys).model_dump(mode="json", by_alias=True)
    return StaffRefundView.model_validate(
        {**platform, "tenant": refund.tenant, "order": order_view(refund.order)}
    )


@router.get(
    "/refunds/{refund_id}",
    response_model=StaffRefundView,
    summary="Get any tenant's refund, with its order and the customer's contact",
)
async def staff_refund(refund_id: RefundId, staff: StaffReader, app: IntakeApp) -> JSONResponse:
    """For reviewers, senior reviewers, finance, auditors, admins and the warehouse. The
    customer's name, e-mail, phone and address are opened for the reader, or `[erased]`
    once the customer was erased (`personal_data` says which). 404 for an unknown id."""
    return answer(await asyncio.to_thread(staff_refund_view, app, refund_id))
