"""Review's staff API for recovery claims: what liable parties owe back after a split
approval, and finance marking each claim recovered or written off."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.review.application import ReviewApplication
from services.review.deps import (
    AnyStaff,
    ClaimPaging,
    ClaimReader,
    Claims,
    ClaimWhere,
    PartyName,
    RefundId,
    ReviewApp,
    Settling,
)
from services.review.recovery import RecoveryClaim
from services.review.schemas import ClaimList, ClaimView, RecoverRequest, WriteOffRequest
from services.review.views import claim_view
from shared.idempotency import KeyedRequest
from shared.keyed import answer
from shared.problems import problem_response, problem_responses
from shared.staff import staff_problem_responses

# Every route is staff's and about one case's claims (404: no such case, or claim).
router = APIRouter(
    prefix="/v1/cases/{refund_id}/claims",
    tags=["recovery"],
    responses=staff_problem_responses(401, 403) | problem_responses(404),
)

# Finance's worklist: the claims of every case (GET /v1/claims).
ledger_router = APIRouter(
    prefix="/v1/claims",
    tags=["recovery"],
    responses=staff_problem_responses(401, 403) | problem_responses(422),
)

SETTLE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: problem_response(404, "No claim against this party for this refund."),
    409: problem_response(
        409,
        "The claim was already recovered or written off (`claim-closed`), or the"
        " Idempotency-Key was used for another request (`idempotency-conflict`).",
    ),
}


@router.get("", response_model=ClaimList, summary="The recovery claims a case's approval opened")
async def list_claims(
    refund_id: RefundId, staff: AnyStaff, app: ReviewApp, request: Request
) -> JSONResponse:
    """One claim per liable party (merchant, carrier) with a share of the approved amount:
    the platform paid the customer first and claims that share back."""
    claims = await asyncio.to_thread(lambda: app.claims_of(app.case(refund_id)))
    return answer(ClaimList.of(request, [claim_view(claim) for claim in claims]))


@ledger_router.get("", response_model=ClaimList, summary="Recovery claims of every case")
async def list_all_claims(
    staff: ClaimReader,
    app: ReviewApp,
    claims: Claims,
    page: ClaimPaging,
    where: ClaimWhere,
    request: Request,
) -> JSONResponse:
    """Newest first (by when the approval opened them), filtered by `state` (e.g. `open`:
    what finance still has to recover or write off) and `party`; cursor pagination as in
    Stripe on the claims' ids."""
    ids, has_more = await asyncio.to_thread(claims.page, where, page)
    found: list[RecoveryClaim] = await asyncio.to_thread(
        lambda: [app.repository.get(uid) for uid in ids]
    )
    return answer(ClaimList.of(request, [claim_view(claim) for claim in found], has_more))


def _settling(name: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """POST /v1/cases/{refund_id}/claims/{party}/<name>: finance settles one claim."""
    path = f"/{{party}}/{name}"
    return router.post(path, response_model=ClaimView, summary=summary, responses=SETTLE_PROBLEMS)


async def _claim_after(
    app: ReviewApplication,
    refund_id: str,
    party: str,
    change: Callable[[RecoveryClaim], None],
    keyed: KeyedRequest | None,
) -> JSONResponse:
    """Settle the claim once with `change`, and answer it (a retry under the same
    Idempotency-Key replays the first answer)."""
    claim, replayed = await asyncio.to_thread(
        app.settle_claim_once, refund_id, party, change, keyed
    )
    return answer(claim_view(claim), 200, replayed)


@_settling("recover", "Mark a claim recovered (finance)")
async def recover_claim(
    refund_id: RefundId, party: PartyName, body: RecoverRequest, staff: Settling, app: ReviewApp
) -> JSONResponse:
    """The party paid its share back; `reference` names the money received. A claim is
    settled once (409 after)."""

    def change(claim: RecoveryClaim) -> None:
        claim.recover(by=staff.sub, reference=body.reference, at=app.now())

    return await _claim_after(app, refund_id, party, change, staff.keyed(body))


@_settling("write-off", "Write a claim off (finance)")
async def write_off_claim(
    refund_id: RefundId, party: PartyName, body: WriteOffRequest, staff: Settling, app: ReviewApp
) -> JSONResponse:
    """The share will not be recovered, for the reason given. A claim is settled once
    (409 after)."""

    def change(claim: RecoveryClaim) -> None:
        claim.write_off(by=staff.sub, reason=body.reason, at=app.now())

    return await _claim_after(app, refund_id, party, change, staff.keyed(body))
