"""Intake's staff route that erases a customer's personal data (admin only)."""

# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_erasure_router() at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from services.intake.application import CustomerNotFound, IntakeApplication
from services.intake.index import ListQuery, RefundIndex
from services.intake.schemas import ErasureRequest, ErasureView
from services.intake.views import erasure_view
from shared.http import Problem, problem_responses
from shared.idempotency import IdempotencyMismatch
from shared.ids import public_id
from shared.keyed import IdempotencyKey, answer, idempotency_conflict, keyed
from shared.staff import Staff, StaffAuth, staff_problem_responses

ERASERS = ("admin",)
PAGE = 100


def refunds_of(index: RefundIndex, tenant: str, customer_id: str) -> list[str]:
    """Every refund of the customer in the tenant's refund list, newest first."""
    found: list[str] = []
    after = None
    while True:
        page = index.page(
            ListQuery(tenant=tenant, customer_id=customer_id, limit=PAGE, starting_after=after)
        )
        found += [public_id("rf", uid) for uid in page.ids]
        if not page.has_more or not page.ids:
            return found
        after = page.ids[-1]


def build_erasure_router(app: IntakeApplication, index: RefundIndex, auth: StaffAuth) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["customers"])
    Admin = Annotated[Staff, Depends(auth.dependency(*ERASERS))]

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
        staff: Admin,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Shreds the customer's key: their name, contact, descriptions and other texts become
        unreadable in every service's store, in read models and in messages not yet sent
        (notify fails those with `customer_erased`). Amounts, decisions and timelines stay.

        Recorded with the admin's name and published as `customer.erased.v1`. Erasing again
        changes nothing; a customer who comes back afterwards gets a new key. 404 when the
        tenant has no such customer.
        """
        request_key = keyed(staff.scope, idempotency_key, request, body)

        def erase() -> tuple[ErasureView, bool]:
            erasure, replayed = app.erase_customer(
                tenant=body.tenant,
                customer_id=customer_id,
                refund_ids=refunds_of(index, body.tenant, customer_id),
                reason=body.reason,
                actor=f"staff:{staff.sub}",
                keyed=request_key,
            )
            return erasure_view(erasure), replayed

        try:
            view, replayed = await asyncio.to_thread(erase)
        except CustomerNotFound:
            raise Problem(
                404,
                "No such customer",
                f"Tenant {body.tenant} has no customer {customer_id}.",
                kind="not-found",
            ) from None
        except IdempotencyMismatch:
            raise idempotency_conflict() from None
        return answer(view, 200, replayed)

    return router
