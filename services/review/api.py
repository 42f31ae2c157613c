"""Review's staff API: the queue, one case with its trail, staff decisions, recovery claims,
policy versions.

Thin routes: who may decide what lives in the case (services/review/domain.py),
which answers a refusal with the rule it broke. Every change names the person
of the staff token as its actor; a refused action is recorded on the case too.
Bodies are in services/review/schemas.py, rendering in services/review/views.py.

Every POST takes an optional Idempotency-Key (Stripe semantics, as intake's):
the same key and body replay the first answer with `Idempotent-Replayed: true`;
the same key with another body or endpoint is a 409. Keys belong to the person
(`sub`) of the staff token; a refused action is not remembered under its key.
"""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_router() at runtime.

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.review.application import CaseNotFound, ClaimNotFound, ReviewApplication
from services.review.domain import APPROVER_ROLES, CaseStateError, DutyViolation, ReviewCase
from services.review.policies import VersionExists
from services.review.policy import Policy
from services.review.queue import QueueQuery, ReviewQueue, UnknownCursor
from services.review.recovery import ClaimClosed, RecoveryClaim
from services.review.schemas import (
    ApproveRequest,
    CaseList,
    CaseState,
    CaseView,
    ClaimList,
    ClaimView,
    CompensateRequest,
    EscalateRequest,
    EvidenceRequestBody,
    PolicyVersionList,
    PolicyVersionView,
    RecoverRequest,
    RejectRequest,
    Tier,
    WriteOffRequest,
)
from services.review.views import case_view, claim_view, queue_entry, version_view
from shared.http import Problem, problem_response
from shared.idempotency import IdempotencyMismatch, KeyedRequest
from shared.keyed import IdempotencyKey, answer, idempotency_conflict, invalid, keyed, one_cursor
from shared.staff import Staff, StaffAuth, staff_problem_responses
from shared.staff_tokens import STAFF_ROLES

RefundId = Annotated[str, Path(max_length=100, description="the refund's id, `rf_…`")]
PartyName = Annotated[str, Path(max_length=40, description="the liable party: merchant, carrier")]


# -- requests and answers ---------------------------------------------------------------------


# -- problems ---------------------------------------------------------------------------------


def refused(violation: DutyViolation) -> Problem:
    return Problem(
        403,
        "Separation of duties",
        violation.message,
        kind="separation-of-duties",
        errors=[{"field": "actor", "code": violation.rule, "message": violation.message}],
    )


def not_found(refund_id: str) -> Problem:
    return Problem(404, "No such case", f"No review case for {refund_id}.", kind="not-found")


# -- routes -----------------------------------------------------------------------------------

Change = Callable[[ReviewCase], None]
Settlement = Callable[[RecoveryClaim], None]
DECIDERS = tuple(sorted(APPROVER_ROLES))
POLICY_READERS = ("reviewer", "senior_reviewer", "auditor", "admin")
SETTLERS = ("finance", "admin")


def build_router(app: ReviewApplication, queue: ReviewQueue, auth: StaffAuth) -> APIRouter:
    router = APIRouter(prefix="/v1")

    AnyStaff = Annotated[Staff, Depends(auth.dependency(*STAFF_ROLES))]
    Decider = Annotated[Staff, Depends(auth.dependency(*DECIDERS))]
    PolicyReader = Annotated[Staff, Depends(auth.dependency(*POLICY_READERS))]
    Admin = Annotated[Staff, Depends(auth.dependency("admin"))]
    Settler = Annotated[Staff, Depends(auth.dependency(*SETTLERS))]

    async def act(
        refund_id: str,
        action: str,
        staff: Staff,
        change: Change,
        key: KeyedRequest | None,
    ) -> JSONResponse:
        """Run one staff action off the event loop; answer the case, or why it was refused.

        A refusal by separation of duties is recorded on the case before the 403 (and
        not remembered under the key, so a retry is decided afresh)."""

        def work() -> tuple[CaseView, bool]:
            try:
                case, replayed = app.act_once(refund_id, change, key)
            except DutyViolation as violation:
                app.record_refusal(refund_id, person=staff.sub, action=action, rule=violation.rule)
                raise
            claims = app.claims_of(case, as_opened=replayed)
            return case_view(case, claims, app.now(), app.keystore), replayed

        try:
            view, replayed = await asyncio.to_thread(work)
        except CaseNotFound:
            raise not_found(refund_id) from None
        except IdempotencyMismatch:
            raise idempotency_conflict() from None
        except DutyViolation as violation:
            raise refused(violation) from None
        except CaseStateError as error:
            raise Problem(
                409, "Not allowed in this state", error.message, kind=error.code.replace("_", "-")
            ) from None
        return answer(view, 200, replayed)

    async def settle(
        refund_id: str, party: str, change: Settlement, key: KeyedRequest | None
    ) -> JSONResponse:
        """Mark one recovery claim settled, off the event loop."""
        try:
            claim, replayed = await asyncio.to_thread(
                app.settle_claim_once, refund_id, party, change, key
            )
        except ClaimNotFound:
            raise Problem(
                404,
                "No such claim",
                f"No recovery claim against {party} for {refund_id}.",
                kind="not-found",
            ) from None
        except IdempotencyMismatch:
            raise idempotency_conflict() from None
        except ClaimClosed as closed:
            raise Problem(409, "Claim already settled", str(closed), kind="claim-closed") from None
        return answer(claim_view(claim), 200, replayed)

    # -- the queue and one case -------------------------------------------------------------

    @router.get(
        "/cases",
        tags=["cases"],
        response_model=CaseList,
        summary="The review queue, newest first",
        responses=staff_problem_responses(401, 403, 422),
    )
    async def list_cases(
        staff: AnyStaff,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        starting_after: Annotated[
            str | None, Query(max_length=100, description="a refund id: older cases")
        ] = None,
        ending_before: Annotated[
            str | None, Query(max_length=100, description="a refund id: newer cases")
        ] = None,
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
        one_cursor(starting_after, ending_before)
        now = app.now()
        query = QueueQuery(
            limit=limit,
            tenant=tenant,
            tier=tier,
            state=state,
            assignee=assignee,
            overdue=overdue,
            now=now,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        try:
            page = await asyncio.to_thread(queue.page, query)
        except UnknownCursor as unknown:
            name = "starting_after" if starting_after else "ending_before"
            raise invalid(f"query.{name}", "unknown_cursor", f"no case {unknown}") from None
        body = CaseList(
            url=request.url.path,
            has_more=page.has_more,
            data=[queue_entry(row, now) for row in page.rows],
        )
        return answer(body)

    @router.get(
        "/cases/{refund_id}",
        tags=["cases"],
        response_model=CaseView,
        summary="One case: facts, assessment trail, approvals, claims, history",
        responses=staff_problem_responses(401, 403, 404),
    )
    async def get_case(refund_id: RefundId, staff: AnyStaff) -> JSONResponse:
        def look() -> CaseView | None:
            case = app.case_for(refund_id)
            if case is None:
                return None
            return case_view(case, app.claims_of(case), app.now(), app.keystore)

        view = await asyncio.to_thread(look)
        if view is None:
            raise not_found(refund_id)
        return answer(view)

    # -- staff actions ------------------------------------------------------------------------

    action_problems = staff_problem_responses(401, 404) | {
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

    @router.post(
        "/cases/{refund_id}/claim",
        tags=["decisions"],
        response_model=CaseView,
        summary="Claim a case (assign it to yourself)",
        responses=action_problems,
    )
    async def claim(
        refund_id: RefundId,
        staff: Decider,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Claiming your own case again changes nothing; someone else's claim is a 409."""
        return await act(
            refund_id,
            "claim",
            staff,
            lambda case: case.claim(staff.sub, app.now()),
            keyed(staff.scope, idempotency_key, request, None),
        )

    @router.post(
        "/cases/{refund_id}/release",
        tags=["decisions"],
        response_model=CaseView,
        summary="Release a case you claimed",
        responses=action_problems,
    )
    async def release(
        refund_id: RefundId,
        staff: Decider,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await act(
            refund_id,
            "release",
            staff,
            lambda case: case.release(staff.sub, app.now()),
            keyed(staff.scope, idempotency_key, request, None),
        )

    @router.post(
        "/cases/{refund_id}/approve",
        tags=["decisions"],
        response_model=CaseView,
        summary="Add your approval",
        responses=action_problems,
    )
    async def approve(
        refund_id: RefundId,
        body: ApproveRequest,
        staff: AnyStaff,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The case is approved once its tier's approvals are complete (`missing_approvals`):
        distinct people, a senior_reviewer or finance where the tier asks. Nobody approves
        twice, approves what they escalated, or re-decides their own decision on appeal (403,
        naming the rule, and recorded on the case). A liability split opens a recovery claim
        per liable party with the approval that completes the case."""
        amount = body.amount.money()
        liability = body.liability.model_dump() if body.liability else None
        return await act(
            refund_id,
            "approve",
            staff,
            lambda case: case.approve(
                person=staff.sub,
                roles=staff.roles,
                amount=amount,
                liability=liability,
                at=app.now(),
                note=body.note,
                coupon=body.coupon.money() if body.coupon else None,
            ),
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/cases/{refund_id}/reject",
        tags=["decisions"],
        response_model=CaseView,
        summary="Reject, explaining why in both languages",
        responses=action_problems,
    )
    async def reject(
        refund_id: RefundId,
        body: RejectRequest,
        staff: AnyStaff,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        explanation = body.explanation.as_dict()
        return await act(
            refund_id,
            "reject",
            staff,
            lambda case: case.reject(
                person=staff.sub,
                roles=staff.roles,
                reason_code=body.reason_code,
                explanation=explanation,
                at=app.now(),
            ),
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/cases/{refund_id}/request-evidence",
        tags=["decisions"],
        response_model=CaseView,
        summary="Ask the customer for more evidence",
        responses=action_problems,
    )
    async def request_evidence(
        refund_id: RefundId,
        body: EvidenceRequestBody,
        staff: AnyStaff,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The review clock stops until the evidence arrives, keeping the time left."""

        def change(case: ReviewCase) -> None:
            now = app.now()
            case.request_evidence(
                person=staff.sub,
                roles=staff.roles,
                missing=list(body.missing),
                message=body.message,
                remaining_seconds=app.remaining_seconds(case, now),
                evidence_due=app.evidence_due(now),
                at=now,
            )

        return await act(
            refund_id,
            "request_evidence",
            staff,
            change,
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/cases/{refund_id}/escalate",
        tags=["decisions"],
        response_model=CaseView,
        summary="Send the case one tier up",
        responses=action_problems,
    )
    async def escalate(
        refund_id: RefundId,
        body: EscalateRequest,
        staff: AnyStaff,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Approvals so far are dropped (the higher tier decides afresh) and whoever
        escalates may not approve the case afterwards."""
        return await act(
            refund_id,
            "escalate",
            staff,
            lambda case: case.escalate(
                person=staff.sub, roles=staff.roles, why=body.reason, at=app.now()
            ),
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/cases/{refund_id}/compensate",
        tags=["decisions"],
        response_model=CaseView,
        summary="Settle with a coupon instead of a refund",
        responses=action_problems,
    )
    async def compensate(
        refund_id: RefundId,
        body: CompensateRequest,
        staff: AnyStaff,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Offered by a senior_reviewer or finance."""
        coupon = body.coupon.money()
        return await act(
            refund_id,
            "compensate",
            staff,
            lambda case: case.offer_compensation(
                person=staff.sub, roles=staff.roles, coupon=coupon, note=body.note, at=app.now()
            ),
            keyed(staff.scope, idempotency_key, request, body),
        )

    # -- recovery claims ------------------------------------------------------------------------

    @router.get(
        "/cases/{refund_id}/claims",
        tags=["recovery"],
        response_model=ClaimList,
        summary="The recovery claims a case's approval opened",
        responses=staff_problem_responses(401, 403, 404),
    )
    async def list_claims(refund_id: RefundId, staff: AnyStaff, request: Request) -> JSONResponse:
        """One claim per liable party (merchant, carrier) with a share of the approved amount:
        the platform paid the customer first and claims that share back."""

        def look() -> list[ClaimView] | None:
            case = app.case_for(refund_id)
            if case is None:
                return None
            return [claim_view(claim) for claim in app.claims_of(case)]

        claims = await asyncio.to_thread(look)
        if claims is None:
            raise not_found(refund_id)
        return answer(ClaimList(url=request.url.path, has_more=False, data=claims))

    settle_problems = staff_problem_responses(401, 403) | {
        404: problem_response(404, "No claim against this party for this refund."),
        409: problem_response(
            409,
            "The claim was already recovered or written off (`claim-closed`), or the"
            " Idempotency-Key was used for another request (`idempotency-conflict`).",
        ),
    }

    @router.post(
        "/cases/{refund_id}/claims/{party}/recover",
        tags=["recovery"],
        response_model=ClaimView,
        summary="Mark a claim recovered (finance)",
        responses=settle_problems,
    )
    async def recover_claim(
        refund_id: RefundId,
        party: PartyName,
        body: RecoverRequest,
        staff: Settler,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The party paid its share back; `reference` names the money received. A claim is
        settled once (409 after)."""
        return await settle(
            refund_id,
            party,
            lambda claim: claim.recover(by=staff.sub, reference=body.reference, at=app.now()),
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/cases/{refund_id}/claims/{party}/write-off",
        tags=["recovery"],
        response_model=ClaimView,
        summary="Write a claim off (finance)",
        responses=settle_problems,
    )
    async def write_off_claim(
        refund_id: RefundId,
        party: PartyName,
        body: WriteOffRequest,
        staff: Settler,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The share will not be recovered, for the reason given. A claim is settled once
        (409 after)."""
        return await settle(
            refund_id,
            party,
            lambda claim: claim.write_off(by=staff.sub, reason=body.reason, at=app.now()),
            keyed(staff.scope, idempotency_key, request, body),
        )

    # -- policies -------------------------------------------------------------------------------

    @router.get(
        "/policies",
        tags=["policies"],
        response_model=PolicyVersionList,
        summary="Every published policy version, oldest first",
        responses=staff_problem_responses(401, 403),
    )
    async def list_policies(staff: PolicyReader) -> JSONResponse:
        versions = await asyncio.to_thread(app.policy_versions)
        current = versions[-1]["version"] if versions else None
        body = PolicyVersionList(
            current=current, data=[version_view(entry, current) for entry in versions]
        )
        return answer(body)

    @router.get(
        "/policies/current",
        tags=["policies"],
        response_model=Policy,
        summary="The policy document in force",
        responses=staff_problem_responses(401, 403),
    )
    async def current_policy(staff: PolicyReader) -> JSONResponse:
        """The document as published; change `version` and the rules, then POST it back."""
        policy = await asyncio.to_thread(lambda: app.policy)
        return JSONResponse(policy.model_dump(mode="json", by_alias=True))

    @router.post(
        "/policies",
        tags=["policies"],
        status_code=201,
        response_model=PolicyVersionView,
        summary="Publish a new policy version",
        responses=staff_problem_responses(401, 403, 409, 422),
    )
    async def publish_policy(
        body: Policy, staff: Admin, request: Request, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """The document is validated as a whole (422 names each bad field); a version is
        published once (409), and is in force for every assessment from then on."""
        key = keyed(staff.scope, idempotency_key, request, body)
        try:
            published, replayed = await asyncio.to_thread(
                app.publish_policy_once, body, by=staff.sub, keyed=key
            )
        except IdempotencyMismatch:
            raise idempotency_conflict() from None
        except VersionExists:
            raise Problem(
                409,
                "Version exists",
                f"Policy version {body.version} was already published; use a new version.",
                kind="version-exists",
            ) from None
        return answer(version_view(published, body.version), 201, replayed)

    return router
