"""The dependencies review's routes declare: the application, the queue, and staff by role.

The composition root (services/review/bootstrap.py) puts the objects on `app.state`;
routes name what they need with these aliases.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from typing import Annotated, Literal

from fastapi import Depends, Path, Query

from services.review.application import ReviewApplication
from services.review.claim_listing import ClaimFilter, ClaimLedger
from services.review.duties import APPROVER_ROLES
from services.review.queue import QueueFilter, ReviewQueue
from services.review.returns.listing import Order, ReturnFilter, WarehouseList
from services.review.returns.pushes import CarrierPushes
from services.review.returns.vocabulary import ReturnState
from services.review.vocabulary import CaseState, ClaimState, Party
from shared.http import on_state
from shared.keyed import staff_command
from shared.paging import cursor_paging
from shared.staff import staff_with
from shared.staff_tokens import STAFF_ROLES
from shared.vocabulary import CarrierCode, Tier

# Who may read the policy versions, and who settles a recovery claim.
POLICY_READERS = ("reviewer", "senior_reviewer", "auditor", "admin")
SETTLERS = ("finance", "admin")
# Who may list the claims across cases: those who settle them, and auditors.
CLAIM_READERS = (*SETTLERS, "auditor")
# Who records what came back to the warehouse, and who may read the returns.
RECEIVERS = ("warehouse", "admin")
RETURN_READERS = ("warehouse", "auditor", "admin")
QueueOrder = Literal["newest", "due"]


def _queue_filter(
    tier: Tier | None = None,
    state: CaseState | None = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    overdue: Annotated[
        bool | None, Query(description="true: pending past the deadline; false: the rest")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=60, description="the refund's reason")] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    min_amount: Annotated[
        int | None, Query(ge=0, description="requested amount at least, in minor units")
    ] = None,
    max_amount: Annotated[
        int | None, Query(ge=0, description="requested amount at most, in minor units")
    ] = None,
    order: Annotated[
        QueueOrder,
        Query(description="newest: newest first; due: soonest deadline first (running clocks)"),
    ] = "newest",
) -> QueueFilter:
    return QueueFilter(
        tenant=tenant,
        tier=tier,
        state=state,
        assignee=assignee,
        overdue=overdue,
        reason=reason,
        currency=currency,
        min_amount=min_amount,
        max_amount=max_amount,
        due_first=order == "due",
    )


def _return_filter(
    state: ReturnState | None = None,
    carrier: CarrierCode | None = None,
    overdue: Annotated[
        bool | None, Query(description="true: past the ship-by or receipt-by date running now")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
) -> ReturnFilter:
    return ReturnFilter(tenant=tenant, state=state, carrier=carrier, overdue=overdue)


def _claim_filter(state: ClaimState | None = None, party: Party | None = None) -> ClaimFilter:
    return ClaimFilter(state=state, party=party)


ReviewApp = Annotated[ReviewApplication, on_state("review")]
Claims = Annotated[ClaimLedger, on_state("claims")]
ClaimPaging = cursor_paging(default_limit=20, item="claim")
ClaimWhere = Annotated[ClaimFilter, Depends(_claim_filter)]
ClaimReader = staff_with(*CLAIM_READERS)
Returns = Annotated[WarehouseList, on_state("returns")]
ReturnPaging = cursor_paging(default_limit=20, item="return")
ReturnWhere = Annotated[ReturnFilter, Depends(_return_filter)]
ReturnOrder = Annotated[
    Order, Query(description="newest: latest planned first; due: soonest deadline first")
]
ReturnReader = staff_with(*RETURN_READERS)
Receiving = staff_command(*RECEIVERS)
PushMeter = Annotated[CarrierPushes, on_state("carrier_pushes")]
Queue = Annotated[ReviewQueue, on_state("queue")]
CasePaging = cursor_paging(default_limit=20, item="case")
CaseFilter = Annotated[QueueFilter, Depends(_queue_filter)]

AnyStaff = staff_with(*STAFF_ROLES)
PolicyReader = staff_with(*POLICY_READERS)
# A staff command, with its optional Idempotency-Key (a retry under it replays the answer).
Acting = staff_command(*STAFF_ROLES)  # the case's own rules say who may decide what
Claiming = staff_command(*sorted(APPROVER_ROLES))
Settling = staff_command(*SETTLERS)
Publishing = staff_command("admin")

RefundId = Annotated[str, Path(max_length=100, description="the refund's id, `rf_…`")]
PartyName = Annotated[str, Path(max_length=40, description="the liable party: merchant, carrier")]
