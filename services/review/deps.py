"""The dependencies review's routes declare: the application, the queue, and staff by role.

The composition root (services/review/bootstrap.py) puts the objects on `app.state`;
routes name what they need with these aliases.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from services.review.application import ReviewApplication
from services.review.duties import APPROVER_ROLES
from services.review.queue import ReviewQueue
from shared.paging import cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES


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


ReviewApp = Annotated[ReviewApplication, Depends(_review)]
Queue = Annotated[ReviewQueue, Depends(_queue)]
CasePaging = cursor_paging(default_limit=20, item="case")

AnyStaff = Annotated[Staff, Depends(_staff_with(*STAFF_ROLES))]
Decider = Annotated[Staff, Depends(_staff_with(*sorted(APPROVER_ROLES)))]
PolicyReader = Annotated[
    Staff, Depends(_staff_with("reviewer", "senior_reviewer", "auditor", "admin"))
]
Settler = Annotated[Staff, Depends(_staff_with("finance", "admin"))]
Admin = Annotated[Staff, Depends(_staff_with("admin"))]

RefundId = Annotated[str, Path(max_length=100, description="the refund's id, `rf_…`")]
PartyName = Annotated[str, Path(max_length=40, description="the liable party: merchant, carrier")]
