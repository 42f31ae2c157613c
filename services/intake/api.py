"""Intake's HTTP routes: the platform-facing refund API (thin; rules live in the domain)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.intake.application import IntakeApplication
from services.intake.checks import evidence_problems, request_problems
from services.intake.deps import Command, Index, IntakeApp, RefundId, RefundQuery, Tenant
from services.intake.domain import RefundRequest
from services.intake.return_schemas import ShipmentRequest
from services.intake.schemas import (
    AppealRequest,
    EvidenceRequest,
    ReceiptRequest,
    RefundCreate,
    RefundList,
    RefundView,
    WithdrawRequest,
)
from services.intake.views import refund_view
from shared.keyed import answer
from shared.money import Money
from shared.problems import invalid_fields, problem_responses

# Every route takes the platform's API key (401 without a valid one).
router = APIRouter(prefix="/v1", tags=["refunds"], responses=problem_responses(401))
# Each route answers the refund (after the command, if it is one) or the problems named here:
# a 404 for no such refund of the tenant's, a 409 when the refund's state refuses the command.
CREATE: dict[str, Any] = {"response_model": RefundView, "responses": problem_responses(409)}
FOUND: dict[str, Any] = {"response_model": RefundView, "responses": problem_responses(404)}
ACTION: dict[str, Any] = {"response_model": RefundView, "responses": problem_responses(404, 409)}


async def shown(
    app: IntakeApplication,
    command: Callable[..., tuple[RefundRequest, bool]],
    /,
    *,
    status: int = 200,
    **arguments: Any,
) -> JSONResponse:
    """Run ``command`` (it answers the refund and whether it was a replay) and show the refund,
    its personal data opened (or `[erased]`), in one store call (`app.call`): both read
    the store and the keystore, and a hop to a worker thread each cost as much as showing
    the refund."""

    def run() -> tuple[RefundView, bool]:
        refund, replayed = command(**arguments)
        return refund_view(refund, app.keys), replayed

    view, replayed = await app.call(run)
    return answer(view, status, replayed)


def _draft(body: RefundCreate) -> dict[str, Any]:
    """The validated request as the application takes it."""
    return {
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


@router.post("/refunds", status_code=201, summary="Create a refund request", **CREATE)
async def create_refund(body: RefundCreate, command: Command, app: IntakeApp) -> JSONResponse:
    """Record a request and reserve its amount on the order's refundable balance.

    `items` defaults to the whole order; `amount` to what those items cost, capped
    by what the order has left. The order snapshot must agree with the one the
    order's first refund recorded (409 otherwise).
    """
    errors = request_problems(body)
    if errors:
        raise invalid_fields(errors)
    return await shown(app, app.request_refund, status=201, draft=_draft(body), **command.by(body))


@router.get("/refunds", response_model=RefundList, summary="List refunds, newest first")
async def list_refunds(
    query: RefundQuery, app: IntakeApp, index: Index, request: Request
) -> JSONResponse:
    """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
    next (older) page; `ending_before` the first id gives the previous one."""

    def listed() -> RefundList:
        found = index.page(query)
        views = []
        for uid in found.ids:
            with app.reading(uid) as refund:  # shown, never changed: no copy
                views.append(refund_view(refund, app.keys))
        return RefundList.of(request, views, found.has_more)

    return answer(await asyncio.to_thread(listed))


@router.get("/refunds/{refund_id}", summary="Get a refund", **FOUND)
async def get_refund(refund_id: RefundId, tenant: Tenant, app: IntakeApp) -> JSONResponse:
    def found() -> RefundView:
        # Shown from the cached refund itself (no copy), within the read-only block.
        with app.showing(tenant, refund_id) as refund:
            return refund_view(refund, app.keys)

    return answer(await app.call(found), 200, False)


@router.post(
    "/refunds/{refund_id}/withdraw", summary="Withdraw a refund before payout starts", **ACTION
)
async def withdraw(
    refund_id: RefundId, command: Command, app: IntakeApp, body: WithdrawRequest | None = None
) -> JSONResponse:
    """Allowed until the payout starts; releases the amount reserved on the order."""
    body = body or WithdrawRequest()
    return await shown(
        app, app.withdraw, refund_id=refund_id, reason=body.reason, **command.by(body)
    )


@router.post("/refunds/{refund_id}/evidence", summary="Add evidence", **ACTION)
async def add_evidence(
    refund_id: RefundId, body: EvidenceRequest, command: Command, app: IntakeApp
) -> JSONResponse:
    """Accepted while the refund is undecided, and while review asks for more."""
    errors = evidence_problems(body.evidence, datetime.now(UTC), prefix="evidence")
    if errors:
        raise invalid_fields(errors)
    evidence = [e.model_dump(mode="json") for e in body.evidence]
    return await shown(
        app,
        app.add_evidence,
        refund_id=refund_id,
        evidence=evidence,
        note=body.note,
        **command.by(body),
    )


@router.post("/refunds/{refund_id}/appeal", summary="Appeal a rejection", **ACTION)
async def appeal(
    refund_id: RefundId, body: AppealRequest, command: Command, app: IntakeApp
) -> JSONResponse:
    """Once per rejection, with a statement; the refund goes back to review and its
    amount is reserved again (409 if other refunds of the order took it meanwhile)."""
    return await shown(
        app, app.appeal, refund_id=refund_id, statement=body.statement, **command.by(body)
    )


@router.post(
    "/refunds/{refund_id}/return-shipment",
    summary="Post the return shipment's carrier and tracking number",
    response_model=RefundView,
    responses=problem_responses(404, 409, 422),
)
async def ship_return(
    refund_id: RefundId, body: ShipmentRequest, command: Command, app: IntakeApp
) -> JSONResponse:
    """While the refund is `awaiting_return` (review asked for the goods back); published as
    `return.shipped.v1` with the return's RMA, and the refund goes `return_in_transit`.

    The carrier must be a known code and the number fit its format (422 naming `carrier` or
    `tracking_number`). The same carrier and number again answer 200 and change nothing;
    another number once shipped, or a refund that needs no return, is a 409 saying why."""
    return await shown(
        app,
        app.ship_return,
        refund_id=refund_id,
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        **command.by(body),
    )


@router.post("/refunds/{refund_id}/confirm-receipt", summary="Confirm the money arrived", **ACTION)
async def confirm_receipt(
    refund_id: RefundId, command: Command, app: IntakeApp, body: ReceiptRequest | None = None
) -> JSONResponse:
    """Only once the refund is paid; it is then closed."""
    body = body or ReceiptRequest()
    return await shown(app, app.confirm_receipt, refund_id=refund_id, **command.by(body))
