"""Intake's staff route that erases a customer's personal data (admin only)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from services.intake.deps import Erasing, Index, IntakeApp
from services.intake.index import ListQuery, RefundIndex
from services.intake.schemas import ErasureRequest, ErasureView
from services.intake.views import erasure_view
from shared.ids import public_id
from shared.keyed import answer
from shared.paging import Page
from shared.problems import problem_responses
from shared.staff import staff_problem_responses

PAGE = 100

router = APIRouter(prefix="/v1", tags=["customers"])


def refunds_of(index: RefundIndex, tenant: str, customer_id: str) -> list[str]:
    """Every refund of the customer in the tenant's refund list, newest first."""
    found: list[str] = []
    after = None
    while True:
        page = index.page(
            ListQuery(tenant=tenant, customer_id=customer_id, page=Page(PAGE, starting_after=after))
        )
        found += [public_id("rf", uid) for uid in page.ids]
        if not page.has_more or not page.ids:
            return found
        after = found[-1]


@router.post(
    "/customers/{customer_id}/erase",
    response_model=ErasureView,
    summary="Erase a customer's personal data (crypto-shredding)",
    responses={
        **staff_problem_responses(401, 403),
        **problem_responses(400, 404, 409, 413, 422),
    },
)
async def erase_customer(
    customer_id: Annotated[str, Path(max_length=200)],
    body: ErasureRequest,
    admin: Erasing,
    app: IntakeApp,
    index: Index,
) -> JSONResponse:
    """Shreds the customer's key: their name, contact, descriptions and other texts become
    unreadable in every service's store, in read models and in messages not yet sent
    (notify fails those with `customer_erased`). Amounts, decisions and timelines stay.

    Recorded with the admin's name and published as `customer.erased.v1`. Erasing again
    changes nothing; a customer who comes back afterwards gets a new key. 404 when the
    tenant has no such customer.
    """
    refund_ids = await asyncio.to_thread(refunds_of, index, body.tenant, customer_id)
    erasure, replayed = await asyncio.to_thread(
        app.erase_customer,
        tenant=body.tenant,
        customer_id=customer_id,
        refund_ids=refund_ids,
        reason=body.reason,
        actor=f"staff:{admin.sub}",
        keyed=admin.keyed(body),
    )
    return answer(erasure_view(erasure), 200, replayed)
