"""Review's staff API for decisions on a case: claim, release, approve, reject, ask for
evidence, escalate, compensate.

Thin routes: who may decide what lives in the case (services/review/domain.py and
services/review/duties.py), which answers a refusal with the rule it broke. Every
change names the person of the staff token as its actor; a refused action is recorded
on the case too (services/review/application.py, `act_as`).

Every POST takes an optional Idempotency-Key (Stripe semantics, as intake's): the same
key and body replay the first answer with `Idempotent-Replayed: true`; the same key with
another body or endpoint is a 409. Keys belong to the person (`sub`) of the staff token;
a refused action is not remembered under its key.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.review.application import ReviewApplication
from services.review.deps import Acting, Claiming, RefundId, ReviewApp
from services.review.domain import ReviewCase
from services.review.schemas import (
    ApproveRequest,
    CaseView,
    CompensateRequest,
    EscalateRequest,
    EvidenceRequestBody,
    RejectRequest,
)
from services.review.views import shown_case
from services.review.vocabulary import StaffAction
from shared.keyed import StaffCall, answer
from shared.problems import problem_response
from shared.staff import staff_problem_responses

# Every action answers these: the rule that refused it, or the state that does not allow it.
ACTION_PROBLEMS = staff_problem_responses(401, 404) | {
    403: problem_response(
        403,
        "The token's roles do not allow this, or separation of duties forbids it to this"
        " person: `errors[0].code` names the rule (the refusal is recorded on the case).",
    ),
    409: problem_response(
        409,
        "Not allowed in the case's state (`type` names why), or the Idempotency-Key was"
        " used for another request (`idempotency-conflict`).",
    ),
}
router = APIRouter(prefix="/v1", tags=["decisions"], responses=ACTION_PROBLEMS)


def _action(name: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """POST /v1/cases/{refund_id}/<name>: one staff action, answered with the case."""
    return router.post(f"/cases/{{refund_id}}/{name}", response_model=CaseView, summary=summary)


async def _case_after(
    app: ReviewApplication,
    refund_id: str,
    staff: StaffCall,
    action: StaffAction,
    change: Callable[[ReviewCase], None],
    body: BaseModel | None = None,
) -> JSONResponse:
    """Apply `change` to the case as the staff person (`act_as`: a refusal is recorded on the
    case and propagates) and answer the case; a replay shows the recovery claims as first
    answered."""
    case, replayed = await asyncio.to_thread(
        app.act_as, refund_id, staff.sub, action, change, staff.keyed(body)
    )
    view = await asyncio.to_thread(shown_case, app, case, as_opened=replayed)
    return answer(view, 200, replayed)


@_action("claim", "Claim a case (assign it to yourself)")
async def claim(refund_id: RefundId, staff: Claiming, app: ReviewApp) -> JSONResponse:
    """Claiming your own case again changes nothing; someone else's claim is a 409."""

    def change(case: ReviewCase) -> None:
        case.claim(staff.sub, app.now())

    return await _case_after(app, refund_id, staff, "claim", change)


@_action("release", "Release a case you claimed")
async def release(refund_id: RefundId, staff: Claiming, app: ReviewApp) -> JSONResponse:
    def change(case: ReviewCase) -> None:
        case.release(staff.sub, app.now())

    return await _case_after(app, refund_id, staff, "release", change)


@_action("approve", "Add your approval")
async def approve(
    refund_id: RefundId, body: ApproveRequest, staff: Acting, app: ReviewApp
) -> JSONResponse:
    """The case is approved once its tier's approvals are complete (`missing_approvals`):
    distinct people, a senior_reviewer or finance where the tier asks. Nobody approves
    twice, approves what they escalated, or re-decides their own decision on appeal (403,
    naming the rule, and recorded on the case). A liability split opens a recovery claim
    per liable party with the approval that completes the case."""
    amount = body.amount.money()
    liability = body.liability.model_dump() if body.liability else None
    coupon = body.coupon.money() if body.coupon else None

    def change(case: ReviewCase) -> None:
        case.approve(
            person=staff.sub,
            roles=staff.roles,
            amount=amount,
            liability=liability,
            at=app.now(),
            note=body.note,
            coupon=coupon,
        )

    return await _case_after(app, refund_id, staff, "approve", change, body)


@_action("reject", "Reject, explaining why in both languages")
async def reject(
    refund_id: RefundId, body: RejectRequest, staff: Acting, app: ReviewApp
) -> JSONResponse:
    """The explanation goes to the customer; `internal_note` stays with staff (shown on the
    case, never published nor sent to the customer)."""

    def change(case: ReviewCase) -> None:
        case.reject(
            person=staff.sub,
            roles=staff.roles,
            reason_code=body.reason_code,
            explanation=body.explanation.as_dict(),
            at=app.now(),
            internal_note=body.internal_note,
        )

    return await _case_after(app, refund_id, staff, "reject", change, body)


@_action("request-evidence", "Ask the customer for more evidence")
async def request_evidence(
    refund_id: RefundId, body: EvidenceRequestBody, staff: Acting, app: ReviewApp
) -> JSONResponse:
    """The review clock stops until the evidence arrives, keeping the time left."""
    missing = list(body.missing)

    def change(case: ReviewCase) -> None:
        now = app.now()
        case.request_evidence(
            person=staff.sub,
            roles=staff.roles,
            missing=missing,
            message=body.message,
            at=now,
            remaining_seconds=app.remaining_seconds(case, now),
            evidence_due=app.evidence_due(now),
        )

    return await _case_after(app, refund_id, staff, "request_evidence", change, body)


@_action("escalate", "Send the case one tier up")
async def escalate(
    refund_id: RefundId, body: EscalateRequest, staff: Acting, app: ReviewApp
) -> JSONResponse:
    """Approvals so far are dropped (the higher tier decides afresh) and whoever
    escalates may not approve the case afterwards."""

    def change(case: ReviewCase) -> None:
        case.escalate(person=staff.sub, roles=staff.roles, why=body.reason, at=app.now())

    return await _case_after(app, refund_id, staff, "escalate", change, body)


@_action("compensate", "Settle with a coupon instead of a refund")
async def compensate(
    refund_id: RefundId, body: CompensateRequest, staff: Acting, app: ReviewApp
) -> JSONResponse:
    """Offered by a senior_reviewer or finance."""
    coupon = body.coupon.money()

    def change(case: ReviewCase) -> None:
        case.offer_compensation(
            person=staff.sub, roles=staff.roles, coupon=coupon, note=body.note, at=app.now()
        )

    return await _case_after(app, refund_id, staff, "compensate", change, body)
