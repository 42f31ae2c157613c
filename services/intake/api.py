"""Intake's HTTP routes: the platform-facing refund API (thin; rules live in the domain)."""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_router() at runtime.

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.intake.application import IntakeApplication, OrderMismatch, RefundNotFound
from services.intake.checks import evidence_problems, request_problems
from services.intake.domain import LifecycleError, RefundRequest
from services.intake.index import ListQuery, RefundIndex, UnknownCursor
from services.intake.orders import FieldProblems
from services.intake.schemas import (
    AppealRequest,
    EvidenceRequest,
    ReceiptRequest,
    RefundCreate,
    RefundList,
    RefundView,
    Status,
    WithdrawRequest,
)
from services.intake.views import refund_view
from shared.auth import ApiKeys
from shared.http import Problem, problem_responses
from shared.idempotency import IdempotencyMismatch
from shared.ids import parse_public_id
from shared.keyed import IdempotencyKey, answer, idempotency_conflict, keyed
from shared.keystore import Keystore
from shared.money import Money

RefundId = Annotated[
    str,
    Path(
        description="the refund's id",
        examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"],
    ),
]


def invalid(errors: list[dict[str, str]]) -> Problem:
    """A 422 problem naming every bad field found by the cross-field checks."""
    return Problem(
        422,
        "Invalid request",
        f"{len(errors)} field(s) failed validation.",
        kind="validation",
        errors=errors,
    )


async def run(
    keystore: Keystore, command: Callable[[], tuple[RefundRequest, bool]], status: int
) -> JSONResponse:
    """Run a command off the event loop and turn its refusals into problem documents; the
    answer shows the refund's personal data opened (or `[erased]`)."""

    def view() -> tuple[RefundView, bool]:
        refund, replayed = command()
        return refund_view(refund, keystore), replayed

    try:
        shown, replayed = await asyncio.to_thread(view)
    except RefundNotFound as missing:
        raise Problem(404, "No such refund", f"No refund {missing}.", kind="not-found") from None
    except IdempotencyMismatch:
        raise idempotency_conflict() from None
    except LifecycleError as refused:
        raise Problem(
            409, "Not allowed in this state", refused.message, kind=refused.code.replace("_", "-")
        ) from None
    except OrderMismatch as mismatch:
        raise Problem(
            409,
            "Order snapshot mismatch",
            "This order was first recorded with other facts; send the same order snapshot.",
            kind="order-snapshot-mismatch",
            errors=[p.as_dict() for p in mismatch.problems],
        ) from None
    except FieldProblems as refused:
        raise invalid([p.as_dict() for p in refused.problems]) from None
    return answer(shown, status, replayed)


def build_router(app: IntakeApplication, keys: ApiKeys, index: RefundIndex) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["refunds"])

    def tenant(authorization: Annotated[str | None, Header()] = None) -> str:
        return keys.tenant_for(authorization)

    Tenant = Annotated[str, Depends(tenant)]

    @router.post(
        "/refunds",
        status_code=201,
        response_model=RefundView,
        summary="Create a refund request",
        responses=problem_responses(400, 401, 409, 413, 422),
    )
    async def create_refund(
        body: RefundCreate, tenant: Tenant, request: Request, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Record a request and reserve its amount on the order's refundable balance.

        `items` defaults to the whole order; `amount` to what those items cost, capped
        by what the order has left. The order snapshot must agree with the one the
        order's first refund recorded (409 otherwise).
        """
        errors = request_problems(body)
        if errors:
            raise invalid(errors)
        draft = {
            "order": body.order.model_dump(mode="json"),
            "items": [i.model_dump() for i in body.items] if body.items else None,
            "amount": Money(body.amount.amount, body.amount.currency) if body.amount else None,
            "reason": body.reason,
            "desired_outcome": body.desired_outcome,
            "description": body.description,
            "evidence": [e.model_dump(mode="json") for e in body.evidence],
            "customer": body.customer.model_dump(mode="json", exclude_none=True),
            "channel": body.channel,
            "raised_by": body.raised_by,
            "metadata": body.metadata,
        }
        request_key = keyed(tenant, idempotency_key, request, body)
        return await run(
            app.keys,
            lambda: app.request_refund(
                tenant=tenant, draft=draft, actor=f"tenant:{tenant}", keyed=request_key
            ),
            201,
        )

    @router.get(
        "/refunds",
        response_model=RefundList,
        summary="List refunds, newest first",
        responses=problem_responses(401, 422),
    )
    async def list_refunds(
        tenant: Tenant,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        starting_after: Annotated[str | None, Query(description="a refund id: older ones")] = None,
        ending_before: Annotated[str | None, Query(description="a refund id: newer ones")] = None,
        order_id: Annotated[str | None, Query(max_length=200)] = None,
        status: Status | None = None,
        customer_id: Annotated[str | None, Query(max_length=200)] = None,
        created_after: AwareDatetime | None = None,
        created_before: AwareDatetime | None = None,
    ) -> JSONResponse:
        """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
        next (older) page; `ending_before` the first id gives the previous one."""
        if starting_after and ending_before:
            raise invalid(
                [
                    {
                        "field": "query.ending_before",
                        "code": "exclusive",
                        "message": "use starting_after or ending_before, not both",
                    }
                ]
            )
        cursors = {"starting_after": starting_after, "ending_before": ending_before}
        parsed = {}
        for name, value in cursors.items():
            parsed[name] = parse_public_id("rf", value) if value else None
            if value and parsed[name] is None:
                raise invalid(
                    [{"field": f"query.{name}", "code": "unknown_cursor", "message": "no such id"}]
                )
        query = ListQuery(
            tenant=tenant,
            limit=limit,
            order_id=order_id,
            status=status,
            customer_id=customer_id,
            created_after=created_after,
            created_before=created_before,
            starting_after=parsed["starting_after"],
            ending_before=parsed["ending_before"],
        )

        def page() -> dict[str, Any]:
            found = index.page(query)
            refunds: list[RefundRequest] = [app.repository.get(uid) for uid in found.ids]
            return {
                "object": "list",
                "url": request.url.path,
                "has_more": found.has_more,
                "data": [refund_view(r, app.keys).model_dump(mode="json") for r in refunds],
            }

        try:
            body = await asyncio.to_thread(page)
        except UnknownCursor as unknown:
            name = "starting_after" if starting_after else "ending_before"
            raise invalid(
                [
                    {
                        "field": f"query.{name}",
                        "code": "unknown_cursor",
                        "message": f"no refund {unknown}",
                    }
                ]
            ) from None
        return JSONResponse(body)

    @router.get(
        "/refunds/{refund_id}",
        response_model=RefundView,
        summary="Get a refund",
        responses=problem_responses(401, 404),
    )
    async def get_refund(refund_id: RefundId, tenant: Tenant) -> JSONResponse:
        return await run(app.keys, lambda: (app.refund_for(tenant, refund_id), False), 200)

    @router.post(
        "/refunds/{refund_id}/withdraw",
        response_model=RefundView,
        summary="Withdraw a refund before payout starts",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def withdraw(
        refund_id: RefundId,
        tenant: Tenant,
        request: Request,
        body: WithdrawRequest | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Allowed until the payout starts; releases the amount reserved on the order."""
        body = body or WithdrawRequest()
        request_key = keyed(tenant, idempotency_key, request, body)
        return await run(
            app.keys,
            lambda: app.withdraw(
                tenant=tenant,
                refund_id=refund_id,
                reason=body.reason,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            ),
            200,
        )

    @router.post(
        "/refunds/{refund_id}/evidence",
        response_model=RefundView,
        summary="Add evidence",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def add_evidence(
        refund_id: RefundId,
        body: EvidenceRequest,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Accepted while the refund is undecided, and while review asks for more."""
        errors = evidence_problems(body.evidence, datetime.now(UTC), prefix="evidence")
        if errors:
            raise invalid(errors)
        request_key = keyed(tenant, idempotency_key, request, body)
        evidence = [e.model_dump(mode="json") for e in body.evidence]
        return await run(
            app.keys,
            lambda: app.add_evidence(
                tenant=tenant,
                refund_id=refund_id,
                evidence=evidence,
                note=body.note,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            ),
            200,
        )

    @router.post(
        "/refunds/{refund_id}/appeal",
        response_model=RefundView,
        summary="Appeal a rejection",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def appeal(
        refund_id: RefundId,
        body: AppealRequest,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Once per rejection, with a statement; the refund goes back to review and its
        amount is reserved again (409 if other refunds of the order took it meanwhile)."""
        request_key = keyed(tenant, idempotency_key, request, body)
        return await run(
            app.keys,
            lambda: app.appeal(
                tenant=tenant,
                refund_id=refund_id,
                statement=body.statement,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            ),
            200,
        )

    @router.post(
        "/refunds/{refund_id}/confirm-receipt",
        response_model=RefundView,
        summary="Confirm the money arrived",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def confirm_receipt(
        refund_id: RefundId,
        tenant: Tenant,
        request: Request,
        body: ReceiptRequest | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Only once the refund is paid; it is then closed."""
        body = body or ReceiptRequest()
        request_key = keyed(tenant, idempotency_key, request, body)
        return await run(
            app.keys,
            lambda: app.confirm_receipt(
                tenant=tenant, refund_id=refund_id, actor=f"tenant:{tenant}", keyed=request_key
            ),
            200,
        )

    return router
