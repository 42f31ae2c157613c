"""Review's staff API bodies (pydantic): requests, and the views staff read, with examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.review.vocabulary import CaseState, ClaimState, Decision, Outcome, Party
from shared.schemas import Amount, AmountOrNothing, Listed, Strict, Text, example
from shared.vocabulary import Tier

LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
Note = Annotated[str, StringConstraints(max_length=2000, strip_whitespace=True)]
EXAMPLE_REFUND = "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"
EXAMPLE_DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


# -- request bodies ---------------------------------------------------------------------------


class Liability(Strict):
    """Who bears the refund, in minor units of its currency; the shares sum to the amount."""

    platform: StrictInt = Field(0, ge=0)
    merchant: StrictInt = Field(0, ge=0)
    carrier: StrictInt = Field(0, ge=0)


class ApproveRequest(Strict):
    model_config = example(
        {
            "amount": {"amount": 250000, "currency": "CNY"},
            "liability": {"platform": 0, "merchant": 200000, "carrier": 50000},
            "note": "Courier's photos show the box crushed in transit.",
        }
    )

    amount: AmountOrNothing = Field(
        description="at most the case's refundable amount (0 only for an exchange at the "
        "same price); a second approver confirms the first approver's amount"
    )
    liability: Liability | None = Field(
        None,
        description="who bears it, when that is disputed; each liable party's share opens a"
        " recovery claim once the case is approved",
    )
    note: Note = Field("", description="the approver's reasoning, kept with the approval")
    coupon: Amount | None = Field(
        None, description="compensation on top of the refund (a coupon, not cash)"
    )

    @model_validator(mode="after")
    def _shares_sum_to_amount(self) -> ApproveRequest:
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
    model_config = example(
        {
            "reason_code": "no_defect_found",
            "explanation": {
                "zh-CN": "经核实，商品无质量问题，因此无法退款。",
                "en": "We found no defect in the item, so it cannot be refunded.",
            },
            "internal_note": "Photo is of another model; the order's SKU has no such part.",
        }
    )

    reason_code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)] = Field(
        description="cited as the rule `manual.<reason_code>`"
    )
    explanation: RejectionExplanation
    internal_note: Note = Field(
        "",
        description="for staff only: shown on the case, never published, never sent to the"
        " customer",
    )


class EvidenceRequestBody(Strict):
    model_config = example(
        {
            "missing": ["photo of the damage", "courier's delivery note"],
            "message": "Please add a photo of the damage and the delivery note.",
        }
    )

    missing: list[Text] = Field(min_length=1, max_length=20, description="what is missing")
    message: LongText = Field(description="what the customer is told")


class EscalateRequest(Strict):
    model_config = example({"reason": "The merchant disputes liability."})

    reason: LongText


class CompensateRequest(Strict):
    model_config = example(
        {
            "coupon": {"amount": 5000, "currency": "CNY"},
            "note": "Custom-made; settled with a coupon by phone.",
        }
    )

    coupon: Amount
    note: LongText


class RecoverRequest(Strict):
    model_config = example({"reference": "SF-20261125-991"})

    reference: Text = Field(description="the reference of the money received")


class WriteOffRequest(Strict):
    model_config = example({"reason": "The merchant closed its shop."})

    reason: LongText


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
    reason: str = Field(examples=["damaged"])
    requested: MoneyView


class CaseList(Listed):
    model_config = example(
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
                    "reason": "damaged",
                    "requested": {"amount": 250000, "currency": "CNY"},
                }
            ],
        }
    )

    data: list[QueueEntry]


class Needs(BaseModel):
    count: int = Field(description="distinct approvers")
    senior: bool = Field(description="one of them a senior_reviewer")
    finance: bool = Field(description="one of them from finance")


class StillNeeded(BaseModel):
    """What the case still waits for before it is approved, as data (none: nothing more)."""

    approvals: int = Field(description="how many more distinct approvers")
    senior_reviewer: bool = Field(description="one of them must be a senior_reviewer")
    finance: bool = Field(description="one of them must be from finance")


class ApprovalView(BaseModel):
    person: str
    roles: list[str]
    amount: MoneyView
    liability: dict[str, int] | None
    at: datetime
    note: str = Field("", description="the approver's reasoning")
    coupon: MoneyView | None = None


class Check(BaseModel):
    rule: str = Field(examples=["auto_approve.limit"])
    passed: bool
    detail: str = Field(examples=["CNY 2500.00 ≤ CNY 500.00"])


class AssessmentView(BaseModel):
    """What the policy concluded when the case opened: the whole trail of checks."""

    outcome: Outcome
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
    outcome: Decision
    rule: str = Field(examples=["manual.important"])
    policy_version: str = Field(examples=["2026-11-01"])
    decided_by: str
    decided_at: datetime
    amount: MoneyView | None = None
    approvers: list[str] | None = None
    liability: dict[str, int] | None = None
    coupon: MoneyView | None = Field(None, description="compensation on top of the refund")
    reason_code: str | None = None
    explanation: dict[str, str] | None = None
    internal_note: str | None = Field(
        None, description="a rejection's note for staff (never shown to the customer)"
    )


class CompensationView(BaseModel):
    coupon: MoneyView
    note: str
    by: str
    at: datetime


class SettlementView(BaseModel):
    by: str = Field(examples=["zhao.finance"])
    at: datetime
    reference: str | None = Field(None, description="recovered: the money's reference")
    reason: str | None = Field(None, description="written off: why")


class ClaimView(BaseModel):
    """What a liable party owes back: the platform paid the customer first."""

    model_config = example(
        {
            "object": "recovery_claim",
            "id": "3f2b8a52-3c1e-4a7e-9d0f-2b7c1e5a9d11",
            "refund_id": EXAMPLE_REFUND,
            "tenant": "acme",
            "order_id": "ORD-1001",
            "party": "carrier",
            "amount": {"amount": 50000, "currency": "CNY"},
            "state": "recovered",
            "settlement": {
                "by": "zhao.finance",
                "at": "2026-11-25T10:00:00Z",
                "reference": "SF-20261125-991",
                "reason": None,
            },
            "version": 2,
        }
    )

    object: Literal["recovery_claim"] = "recovery_claim"
    id: str = Field(description="the claim's id, as in `review.recovery_claimed.v1`")
    refund_id: str
    tenant: str
    order_id: str
    party: Party
    amount: MoneyView = Field(description="the party's share of the approved amount")
    state: ClaimState
    settlement: SettlementView | None = Field(description="once recovered or written off")
    version: int


class ClaimList(Listed):
    data: list[ClaimView]


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: str = Field(examples=["approval_added"])
    at: datetime
    actor: str = Field(examples=["li.na"])


class CaseView(BaseModel):
    """A review case as staff see it: facts, assessment, approvals so far, and its history."""

    model_config = example(
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
            "still_needed": {"approvals": 2, "senior_reviewer": False, "finance": False},
            "excluded": {},
            "assignee": "li.na",
            "deadline": "2026-11-23T10:00:00Z",
            "overdue": False,
            "policy_version": "2026-11-01",
            "rule": "manual.over_limit",
            "claims": [],
            "version": 3,
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
    still_needed: StillNeeded
    excluded: dict[str, str] = Field(description="people who may not decide, and the rule why")
    assignee: str | None
    deadline: datetime | None
    overdue: bool
    policy_version: str
    rule: str = Field(description="the rule that sent the case here (or decided it)")
    assessment: AssessmentView
    evidence: list[dict[str, Any]] = Field(
        description="what the customer sent: photos, documents… (kind, url, sha256, captured_at)"
    )
    evidence_requests: list[EvidenceRequestView]
    decision: DecisionView | None
    decisions: list[DecisionView]
    compensation: CompensationView | None
    claims: list[ClaimView] = Field(
        description="recovery claims the approval opened against liable parties"
    )
    history: list[HistoryEntry]
    version: int = Field(description="the case's version; grows with every change")


class PolicyVersionView(BaseModel):
    version: str = Field(examples=["2026-11-01"])
    digest: str = Field(description="sha256 of the canonical document")
    by: str = Field(examples=["system:shipped", "wang.admin"])
    at: datetime
    current: bool


class PolicyVersionList(BaseModel):
    model_config = example(
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
    )

    object: Literal["list"] = "list"
    current: str | None
    data: list[PolicyVersionView]
