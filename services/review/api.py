"""Review's staff API: the queue, one case with its trail, staff decisions, policy versions.

Thin routes: who may decide what lives in the case (services/review/domain.py),
which answers a refusal with the rule it broke. Every change names the person
of the staff token as its actor; a refused action is recorded on the case too.
"""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_router() at runtime.

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from refunds.jwt import STAFF_ROLES
from services.review.application import CaseNotFound, ReviewApplication
from services.review.domain import APPROVER_ROLES, CaseStateError, DutyViolation, ReviewCase
from services.review.policies import VersionExists
from services.review.policy import Policy
from services.review.queue import QueueQuery, QueueRow, ReviewQueue, UnknownCursor
from shared.http import Problem, problem_response
from shared.money import CURRENCY_EXPONENTS, Money
from shared.staff import Staff, StaffAuth, staff_problem_responses

Tier = Literal["general", "important", "major"]
CaseState = Literal[
    "pending", "awaiting_evidence", "approved", "rejected", "withdrawn", "compensated"
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
RefundId = Annotated[str, Path(max_length=100, description="the refund's id, `rf_…`")]
EXAMPLE_REFUND = "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"
EXAMPLE_DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


# -- request bodies ---------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_currency(code: str) -> str:
    if code not in CURRENCY_EXPONENTS:
        raise PydanticCustomError(
            "unknown_currency", "{code} is not a supported ISO 4217 currency", {"code": code}
        )
    return code


Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"]), AfterValidator(_known_currency)
]


class Amount(Strict):
    """Money: integer minor units (12900 CNY = ¥129.00) and an ISO 4217 currency."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"amount": 250000, "currency": "CNY"}]}
    )

    amount: StrictInt = Field(gt=0, le=10**15, description="minor units, > 0")
    currency: Currency

    def money(self) -> Money:
        return Money(self.amount, self.currency)


class Liability(Strict):
    """Who bears the refund, in minor units of its currency; the shares sum to the amount."""

    platform: StrictInt = Field(0, ge=0)
    merchant: StrictInt = Field(0, ge=0)
    carrier: StrictInt = Field(0, ge=0)


class ApproveRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": {"amount": 250000, "currency": "CNY"},
                    "liability": {"platform": 0, "merchant": 200000, "carrier": 50000},
                }
            ]
        },
    )

    amount: Amount = Field(
        description="at most the case's refundable amount; a second "
        "approver confirms the first approver's amount"
    )
    liability: Liability | None = Field(None, description="who bears it, when that is disputed")

    @model_validator(mode="after")
    def _shares_sum_to_amount(self) -> "ApproveRequest":
        if self.liability is not None:
            total = self.liability.platform + self.liability.merchant + self.liability.carrier
            if total != self.amount.amount:
                raise PydanticCustomError(
                    "liability_split",
                    "liability shares sum to {total}, not the amount {amount}",
                    {"total": total, "amount": self.amount.amount},
                )
        return self


class RejectionExplanation(Strict):
    """What the customer reads, in both languages."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    zh_CN: LongText = Field(alias="zh-CN")
    en: LongText

    def as_dict(self) -> dict[str, str]:
        return {"zh-CN": self.zh_CN, "en": self.en}


class RejectRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason_code": "no_defect_found",
                    "explanation": {
                        "zh-CN": "经核实，商品无质量问题，因此无法退款。",
                        "en": "We found no defect in the item, so it cannot be refunded.",
                    },
                }
            ]
        },
    )

    reason_code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)] = Field(
        description="cited as the rule `manual.<reason_code>`"
    )
    explanation: RejectionExplanation


class EvidenceRequestBody(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "missing": ["photo of the damage", "courier's delivery note"],
                    "message": "Please add a photo of the damage and the delivery note.",
                }
            ]
        },
    )

    missing: list[Text] = Field(min_length=1, max_length=20, description="what is missing")
    message: LongText = Field(description="what the customer is told")


class EscalateRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "The merchant disputes liability."}]},
    )

    reason: LongText


class CompensateRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "coupon": {"amount": 5000, "currency": "CNY"},
                    "note": "Custom-made; settled with a coupon by phone.",
                }
            ]
        },
    )

    coupon: Amount
    note: LongText


# -- responses --------------------------------------------------------------------------------


class MoneyView(BaseModel):
    amount: int = Field(examples=[250000])
    currency: str = Field(examples=["CNY"])


class QueueEntry(BaseModel):
    refund_id: str = Field(examples=[EXAMPLE_REFUND])
    tenant: str = Field(examples=["acme"])
    state: CaseState
    tier: Tier
    assignee: str | None = Field(examples=["li.na"])
    deadline: datetime | None = Field(description="when a decision is due (none while paused)")
    overdue: bool = Field(description="pending and past its deadline")
    opened_at: datetime


class CaseList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "url": "/v1/cases",
                    "has_more": False,
                    "data": [
                        {
                            "refund_id": EXAMPLE_REFUND,
                            "tenant": "acme",
                            "state": "pending",
                            "tier": "important",
                            "assignee": None,
                            "deadline": "2026-11-23T10:00:00Z",
                            "overdue": False,
                            "opened_at": "2026-11-20T10:00:00Z",
                        }
                    ],
                }
            ]
        }
    )

    object: Literal["list"] = "list"
    url: str
    has_more: bool
    data: list[QueueEntry]


class Needs(BaseModel):
    count: int = Field(description="distinct approvers")
    senior: bool = Field(description="one of them a senior_reviewer")
    finance: bool = Field(description="one of them from finance")


class ApprovalView(BaseModel):
    person: str
    roles: list[str]
    amount: MoneyView
    liability: dict[str, int] | None
    at: datetime


class Check(BaseModel):
    rule: str = Field(examples=["auto_approve.limit"])
    passed: bool
    detail: str = Field(examples=["CNY 2500.00 ≤ CNY 500.00"])


class AssessmentView(BaseModel):
    """What the policy concluded when the case opened: the whole trail of checks."""

    outcome: Literal["approve", "reject", "manual"]
    rule: str = Field(examples=["manual.over_limit"])
    amount: MoneyView = Field(description="what an approval may pay at most")
    explanation: dict[str, str]
    risk_score: int
    risk_signals: dict[str, int | str]
    checks: list[Check]


class EvidenceRequestView(BaseModel):
    missing: list[str]
    message: str
    by: str
    at: datetime


class DecisionView(BaseModel):
    outcome: Literal["approved", "rejected"]
    rule: str = Field(examples=["manual.important"])
    policy_version: str = Field(examples=["2026-11-01"])
    decided_by: str
    decided_at: datetime
    amount: MoneyView | None = None
    approvers: list[str] | None = None
    liability: dict[str, int] | None = None
    reason_code: str | None = None
    explanation: dict[str, str] | None = None


class CompensationView(BaseModel):
    coupon: MoneyView
    note: str
    by: str
    at: datetime


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: str = Field(examples=["approval_added"])
    at: datetime
    actor: str = Field(examples=["li.na"])


class CaseView(BaseModel):
    """A review case as staff see it: facts, assessment, approvals so far, and its history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "review_case",
                    "refund_id": EXAMPLE_REFUND,
                    "tenant": "acme",
                    "order_id": "ORD-1001",
                    "customer_id": "C-42",
                    "reason": "damaged",
                    "requested": {"amount": 250000, "currency": "CNY"},
                    "refundable": {"amount": 250000, "currency": "CNY"},
                    "tier": "important",
                    "state": "pending",
                    "round": 1,
                    "needs": {"count": 2, "senior": False, "finance": False},
                    "approvals": [],
                    "missing_approvals": ["2 more approval(s)"],
                    "excluded": {},
                    "assignee": "li.na",
                    "deadline": "2026-11-23T10:00:00Z",
                    "overdue": False,
                    "policy_version": "2026-11-01",
                    "rule": "manual.over_limit",
                    "version": 3,
                }
            ]
        }
    )

    object: Literal["review_case"] = "review_case"
    refund_id: str
    tenant: str
    order_id: str
    customer_id: str
    reason: str
    requested: MoneyView
    refundable: MoneyView
    tier: Tier
    state: CaseState
    round: int = Field(description="1, and one more per appeal")
    needs: Needs
    approvals: list[ApprovalView]
    missing_approvals: list[str] = Field(examples=[["1 more approval(s)", "a senior_reviewer"]])
    excluded: dict[str, str] = Field(description="people who may not decide, and the rule why")
    assignee: str | None
    deadline: datetime | None
    overdue: bool
    policy_version: str
    rule: str = Field(description="the rule that sent the case here (or decided it)")
    assessment: AssessmentView
    evidence_requests: list[EvidenceRequestView]
    decision: DecisionView | None
    decisions: list[DecisionView]
    compensation: CompensationView | None
    history: list[HistoryEntry]
    version: int = Field(description="the case's version; grows with every change")


class PolicyVersionView(BaseModel):
    version: str = Field(examples=["2026-11-01"])
    digest: str = Field(description="sha256 of the canonical document")
    by: str = Field(examples=["system:shipped", "wang.admin"])
    at: datetime
    current: bool


class PolicyVersionList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "current": "2026-11-01",
                    "data": [
                        {
                            "version": "2026-11-01",
                            "digest": EXAMPLE_DIGEST,
                            "by": "system:shipped",
                            "at": "2026-11-01T00:00:00Z",
                            "current": True,
                        }
                    ],
                }
            ]
        }
    )

    object: Literal["list"] = "list"
    current: str | None
    data: list[PolicyVersionView]


# -- views ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Money as {amount, currency}, inside any dicts and lists."""
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


ASSESSMENT_FIELDS = tuple(AssessmentView.model_fields)


def is_overdue(state: str, deadline: datetime | None, now: datetime) -> bool:
    return state == "pending" and deadline is not None and deadline < now


def case_view(case: ReviewCase, now: datetime) -> CaseView:
    assessment = case.assessment
    return CaseView.model_validate(
        plain(
            {
                "refund_id": case.refund_id,
                "tenant": case.tenant,
                "order_id": case.order_id,
                "customer_id": case.customer_id,
                "reason": case.reason,
                "requested": case.requested,
                "refundable": case.refundable,
                "tier": case.tier,
                "state": case.state,
                "round": case.round,
                "needs": {"senior": False, "finance": False, **case.needs},
                "approvals": case.approvals,
                "missing_approvals": case.missing_approvals(),
                "excluded": case.excluded,
                "assignee": case.assignee,
                "deadline": case.deadline,
                "overdue": is_overdue(case.state, case.deadline, now),
                "policy_version": case.policy_version,
                "rule": assessment["rule"],
                "assessment": {key: assessment[key] for key in ASSESSMENT_FIELDS},
                "evidence_requests": case.evidence_requests,
                "decision": case.decision,
                "decisions": case.decisions,
                "compensation": case.compensation,
                "history": case.history,
                "version": case.version,
            }
        )
    )


def queue_entry(row: QueueRow, now: datetime) -> QueueEntry:
    return QueueEntry.model_validate(
        {
            "refund_id": row.refund_id,
            "tenant": row.tenant,
            "state": row.state,
            "tier": row.tier,
            "assignee": row.assignee,
            "deadline": row.deadline,
            "overdue": row.overdue(now),
            "opened_at": row.opened_at,
        }
    )


def version_view(entry: dict[str, Any], current: str | None) -> PolicyVersionView:
    return PolicyVersionView(
        version=entry["version"],
        digest=entry["digest"],
        by=entry["by"],
        at=entry["at"],
        current=entry["version"] == current,
    )


# -- problems ---------------------------------------------------------------------------------


def invalid(field: str, code: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        "1 field(s) failed validation.",
        kind="validation",
        errors=[{"field": field, "code": code, "message": message}],
    )


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
DECIDERS = tuple(sorted(APPROVER_ROLES))
POLICY_READERS = ("reviewer", "senior_reviewer", "auditor", "admin")


def build_router(app: ReviewApplication, queue: ReviewQueue, auth: StaffAuth) -> APIRouter:
    router = APIRouter(prefix="/v1")

    AnyStaff = Annotated[Staff, Depends(auth.dependency(*STAFF_ROLES))]
    Decider = Annotated[Staff, Depends(auth.dependency(*DECIDERS))]
    PolicyReader = Annotated[Staff, Depends(auth.dependency(*POLICY_READERS))]
    Admin = Annotated[Staff, Depends(auth.dependency("admin"))]

    async def act(refund_id: str, action: str, staff: Staff, change: Change) -> JSONResponse:
        """Run one staff action off the event loop; answer the case, or why it was refused.

        A refusal by separation of duties is recorded on the case before the 403."""

        def work() -> ReviewCase:
            try:
                return app.act(refund_id, change)
            except DutyViolation as violation:
                app.record_refusal(refund_id, person=staff.sub, action=action, rule=violation.rule)
                raise

        try:
            case = await asyncio.to_thread(work)
        except CaseNotFound:
            raise not_found(refund_id) from None
        except DutyViolation as violation:
            raise refused(violation) from None
        except CaseStateError as error:
            raise Problem(
                409, "Not allowed in this state", error.message, kind=error.code.replace("_", "-")
            ) from None
        return JSONResponse(case_view(case, app.now()).model_dump(mode="json"))

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
        if starting_after and ending_before:
            raise invalid(
                "query.ending_before", "exclusive", "use starting_after or ending_before, not both"
            )
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
        return JSONResponse(body.model_dump(mode="json"))

    @router.get(
        "/cases/{refund_id}",
        tags=["cases"],
        response_model=CaseView,
        summary="One case: facts, assessment trail, approvals, history",
        responses=staff_problem_responses(401, 403, 404),
    )
    async def get_case(refund_id: RefundId, staff: AnyStaff) -> JSONResponse:
        case = await asyncio.to_thread(app.case_for, refund_id)
        if case is None:
            raise not_found(refund_id)
        return JSONResponse(case_view(case, app.now()).model_dump(mode="json"))

    # -- staff actions ------------------------------------------------------------------------

    action_problems = staff_problem_responses(401, 404, 409) | {
        403: problem_response(
            403,
            "The token's roles do not allow this, or separation of duties forbids it to this"
            " person: `errors[0].code` names the rule (the refusal is recorded on the case).",
        )
    }

    @router.post(
        "/cases/{refund_id}/claim",
        tags=["decisions"],
        response_model=CaseView,
        summary="Claim a case (assign it to yourself)",
        responses=action_problems,
    )
    async def claim(refund_id: RefundId, staff: Decider) -> JSONResponse:
        """Claiming your own case again changes nothing; someone else's claim is a 409."""
        return await act(refund_id, "claim", staff, lambda case: case.claim(staff.sub, app.now()))

    @router.post(
        "/cases/{refund_id}/release",
        tags=["decisions"],
        response_model=CaseView,
        summary="Release a case you claimed",
        responses=action_problems,
    )
    async def release(refund_id: RefundId, staff: Decider) -> JSONResponse:
        return await act(
            refund_id, "release", staff, lambda case: case.release(staff.sub, app.now())
        )

    @router.post(
        "/cases/{refund_id}/approve",
        tags=["decisions"],
        response_model=CaseView,
        summary="Add your approval",
        responses=action_problems,
    )
    async def approve(refund_id: RefundId, body: ApproveRequest, staff: AnyStaff) -> JSONResponse:
        """The case is approved once its tier's approvals are complete (`missing_approvals`):
        distinct people, a senior_reviewer or finance where the tier asks. Nobody approves
        twice, approves what they escalated, or re-decides their own decision on appeal (403,
        naming the rule, and recorded on the case)."""
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
            ),
        )

    @router.post(
        "/cases/{refund_id}/reject",
        tags=["decisions"],
        response_model=CaseView,
        summary="Reject, explaining why in both languages",
        responses=action_problems,
    )
    async def reject(refund_id: RefundId, body: RejectRequest, staff: AnyStaff) -> JSONResponse:
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
        )

    @router.post(
        "/cases/{refund_id}/request-evidence",
        tags=["decisions"],
        response_model=CaseView,
        summary="Ask the customer for more evidence",
        responses=action_problems,
    )
    async def request_evidence(
        refund_id: RefundId, body: EvidenceRequestBody, staff: AnyStaff
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
                at=now,
            )

        return await act(refund_id, "request_evidence", staff, change)

    @router.post(
        "/cases/{refund_id}/escalate",
        tags=["decisions"],
        response_model=CaseView,
        summary="Send the case one tier up",
        responses=action_problems,
    )
    async def escalate(refund_id: RefundId, body: EscalateRequest, staff: AnyStaff) -> JSONResponse:
        """Approvals so far are dropped (the higher tier decides afresh) and whoever
        escalates may not approve the case afterwards."""
        return await act(
            refund_id,
            "escalate",
            staff,
            lambda case: case.escalate(
                person=staff.sub, roles=staff.roles, why=body.reason, at=app.now()
            ),
        )

    @router.post(
        "/cases/{refund_id}/compensate",
        tags=["decisions"],
        response_model=CaseView,
        summary="Settle with a coupon instead of a refund",
        responses=action_problems,
    )
    async def compensate(
        refund_id: RefundId, body: CompensateRequest, staff: AnyStaff
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
        return JSONResponse(body.model_dump(mode="json"))

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
    async def publish_policy(body: Policy, staff: Admin) -> JSONResponse:
        """The document is validated as a whole (422 names each bad field); a version is
        published once (409), and is in force for every assessment from then on."""
        try:
            published = await asyncio.to_thread(app.publish_policy, body, by=staff.sub)
        except VersionExists:
            raise Problem(
                409,
                "Version exists",
                f"Policy version {body.version} was already published; use a new version.",
                kind="version-exists",
            ) from None
        view = version_view(published, body.version)
        return JSONResponse(view.model_dump(mode="json"), 201)

    return router
