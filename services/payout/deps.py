"""The dependencies payout's routes take: the application, its read models, the callback key,
staff by role, and the paging and path parameters of its lists and resources."""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeAlias

from fastapi import Depends, Path, Request

from services.payout.application import PayoutApplication
from services.payout.gateway import CallbackKey
from services.payout.index import PayoutIndex, ReconciliationIndex
from shared.paging import Page, cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES

# Who may do what: finance (and admins) act on payouts; auditors read along.
FINANCE = ("finance", "admin")
READERS = ("finance", "auditor", "admin")


def _payout(request: Request) -> PayoutApplication:
    app: PayoutApplication = request.app.state.payout
    return app


def _payout_index(request: Request) -> PayoutIndex:
    index: PayoutIndex = request.app.state.payout_index
    return index


def _reconciliation_index(request: Request) -> ReconciliationIndex:
    index: ReconciliationIndex = request.app.state.reconciliation_index
    return index


def _callback_key(request: Request) -> CallbackKey:
    key: CallbackKey = request.app.state.callback_key
    return key


def _staff(*roles: str) -> Callable[..., Staff]:
    """The person behind the staff token, if they hold one of `roles` (401/403 otherwise)."""
    if not set(roles) <= set(STAFF_ROLES):
        raise ValueError(f"unknown staff roles in {roles}; known: {STAFF_ROLES}")

    def staff_member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.dependency(*roles)(credentials)

    return staff_member


PayoutApp = Annotated[PayoutApplication, Depends(_payout)]
Payouts = Annotated[PayoutIndex, Depends(_payout_index)]
Reconciliations = Annotated[ReconciliationIndex, Depends(_reconciliation_index)]
SigningKey = Annotated[CallbackKey, Depends(_callback_key)]
Reader = Annotated[Staff, Depends(_staff(*READERS))]
Finance = Annotated[Staff, Depends(_staff(*FINANCE))]

PayoutId = Annotated[str, Path(max_length=100, description="the payout's id, `po_…` (or its UUID)")]
ReportId = Annotated[
    str, Path(max_length=100, description="the reconciliation's id, `rc_…` (or its UUID)")
]

if TYPE_CHECKING:  # what a route gets from the paging aliases below
    PayoutPaging: TypeAlias = Page
    ReconciliationPaging: TypeAlias = Page
else:
    PayoutPaging = cursor_paging(default_limit=20, item="payout")
    ReconciliationPaging = cursor_paging(default_limit=20, item="reconciliation")
