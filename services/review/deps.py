"""The dependencies review's routes declare: the application, the queue, and staff by role.

The composition root (services/review/bootstrap.py) puts the objects on `app.state`;
routes name what they need with these aliases.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel

from services.review.application import ReviewApplication
from services.review.duties import APPROVER_ROLES
from services.review.queue import QueueFilter, ReviewQueue
from services.review.vocabulary import CaseState
from shared.idempotency import KeyedRequest
from shared.keyed import IdempotencyKey, keyed
from shared.paging import cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES
from shared.vocabulary import Tier


def _review(request: Request) -> ReviewApplication:
    app: ReviewApplication = request.app.state.review
    return app


def _queue(request: Request) -> ReviewQueue:
    queue: ReviewQueue = request.app.state.queue
    return queue


def _staff_with(*roles: str) -> Callable[..., Staff]:
    """The staff member behind the request's token, if they hold one of `roles`
    (401/403 otherwise), verified with the app's StaffAuth."""
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown:  # a typo fails at import, not on the first request
        raise ValueError(f"unknown staff roles {unknown}")

    def staff_member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.dependency(*roles)(credentials)

    return staff_member


@dataclass(frozen=True)
class RetryKey:
    """A POST's optional Idempotency-Key: a retry under it replays the first answer."""

    request: Request
    key: str | None

    def of(self, staff: Staff, body: BaseModel | None = None) -> KeyedRequest | None:
        """The request under its key among the staff person's keys (None: sent without)."""
        return keyed(staff.scope, self.key, self.request, body)


def _retry_key(request: Request, idempotency_key: IdempotencyKey = None) -> RetryKey:
    return RetryKey(request, idempotency_key)


def _queue_filter(
    tier: Tier | None = None,
    state: CaseState | None = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    overdue: Annotated[
        bool | None, Query(description="true: pending past the deadline; false: the rest")
    ] = None,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
) -> QueueFilter:
    return QueueFilter(tenant=tenant, tier=tier, state=state, assignee=assignee, overdue=overdue)


ReviewApp = Annotated[ReviewApplication, Depends(_review)]
Queue = Annotated[ReviewQueue, Depends(_queue)]
CasePaging = cursor_paging(default_limit=20, item="case")
CaseFilter = Annotated[QueueFilter, Depends(_queue_filter)]
Retry = Annotated[RetryKey, Depends(_retry_key)]

AnyStaff = Annotated[Staff, Depends(_staff_with(*STAFF_ROLES))]
Decider = Annotated[Staff, Depends(_staff_with(*sorted(APPROVER_ROLES)))]
PolicyReader = Annotated[
    Staff, Depends(_staff_with("reviewer", "senior_reviewer", "auditor", "admin"))
]
Settler = Annotated[Staff, Depends(_staff_with("finance", "admin"))]
Admin = Annotated[Staff, Depends(_staff_with("admin"))]

RefundId = Annotated[str, Path(max_length=100, description="the refund's id, `rf_…`")]
PartyName = Annotated[str, Path(max_length=40, description="the liable party: merchant, carrier")]
