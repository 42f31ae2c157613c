"""Review's staff API for recovery claims: what liable parties owe back after a split
approval, and finance marking each claim recovered or written off."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.review.deps import AnyStaff, PartyName, RefundId, ReviewApp, Settling
from services.review.recovery import RecoveryClaim
from services.review.schemas import ClaimList, ClaimView, RecoverRequest, WriteOffRequest
from services.review.views import claim_view
from shared.keyed import answer
from shared.problems import problem_response, problem_responses
from shared.staff import staff_problem_responses

router = APIRouter(prefix="/v1", tags=["recovery"], responses=staff_problem_responses(401, 403))

SETTLE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: problem_response(404, "No claim against this party for this refund."),
    409: problem_response(
        409,
        "The claim was already recovered or written off (`claim-closed`), or the"
        " Idempotency-Key was used for another request (`idempotency-conflict`).",
    ),
}


@router.get(
    "/cases/{refund_id}/claims",
    response_model=ClaimList,
    summary="The recovery claims a case's approval opened",
    responses=problem_responses(404),
)
async def list_claims(
    refund_id: RefundId, staff: AnyStaff, app: ReviewApp, request: Request
) -> JSONResponse:
    """One claim per liable party (merchant, carrier) with a share of the approved amount:
    the platform paid the customer first and claims that share back."""
    claims = await asyncio.to_thread(lambda: app.claims_of(app.case(refund_id)))
    return answer(ClaimList.of(request, [claim_view(claim) for claim in claims]))


@router.post(
    "/cases/{refund_id}/claims/{party}/recover",
    response_model=ClaimView,
    summary="Mark a claim recovered (finance)",
    responses=SETTLE_PROBLEMS,
)
async def recover_claim(
    refund_id: RefundId,
    party: PartyName,
    body: RecoverRequest,
    staff: Settling,
    app: ReviewApp,
) -> JSONResponse:
    """The party paid its share back; `reference` names the money received. A claim is
    settled once (409 after)."""

    def change(claim: RecoveryClaim) -> None:
        claim.recover(by=staff.sub, reference=body.reference, at=app.now())

    claim, replayed = await asyncio.to_thread(
        app.settle_claim_once, refund_id, party, change, staff.keyed(body)
    )
    return answer(claim_view(claim), 200, replayed)


@router.post(
    "/cases/{refund_id}/claims/{party}/write-off",
    response_model=ClaimView,
    summary="Write a claim off (finance)",
    responses=SETTLE_PROBLEMS,
)
async def write_off_claim(
    refund_id: RefundId,
    party: PartyName,
    body: WriteOffRequest,
    staff: Settling,
    app: ReviewApp,
) -> JSONResponse:
    """The share will not be recovered, for the reason given. A claim is settled once
    (409 after)."""

    def change(claim: RecoveryClaim) -> None:
        claim.write_off(by=staff.sub, reason=body.reason, at=app.now())

    claim, replayed = await asyncio.to_thread(
        app.settle_claim_once, refund_id, party, change, staff.keyed(body)
    )
    return answer(claim_view(claim), 200, replayed)
