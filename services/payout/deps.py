"""The dependencies payout's routes take: the application, its read models, the callback key,
staff by role, and the paging and path parameters of its lists and resources."""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from fastapi import Depends, Path, Request
from pydantic import BaseModel

from services.payout.application import PayoutApplication
from services.payout.gateway import CallbackKey
from services.payout.index import PayoutIndex, ReconciliationIndex
from shared.idempotency import KeyedRequest
from shared.keyed import IdempotencyKey, keyed
from shared.paging import Page, cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES

# Who may do what: finance (and admins) act on payouts; auditors read along.
FINANCE = ("finance", "admin")
READERS = ("finance", "auditor", "admin")


def _on_state(name: str) -> Any:
    """`Depends(...)` on what the composition root put on `http.state` under `name`."""

    async def get(request: Request) -> Any:  # no thread: it only reads the state
        return getattr(request.app.state, name)

    return Depends(get)


def _staff(*roles: str) -> Callable[..., Staff]:
    """The person behind the staff token, if they hold one of `roles` (401/403 otherwise)."""
    if not set(roles) <= set(STAFF_ROLES):
        raise ValueError(f"unknown staff roles in {roles}; known: {STAFF_ROLES}")

    def staff_member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.dependency(*roles)(credentials)

    return staff_member


PayoutApp = Annotated[PayoutApplication, _on_state("payout")]
Payouts = Annotated[PayoutIndex, _on_state("payout_index")]
Reconciliations = Annotated[ReconciliationIndex, _on_state("reconciliation_index")]
SigningKey = Annotated[CallbackKey, _on_state("callback_key")]
Reader = Annotated[Staff, Depends(_staff(*READERS))]
Finance = Annotated[Staff, Depends(_staff(*FINANCE))]


@dataclass(frozen=True)
class FinanceCall:
    """A finance action asked for: who asks, under which Idempotency-Key (if any)."""

    staff: Staff
    request: Request
    idempotency_key: str | None

    def keyed(self, body: BaseModel | None = None) -> KeyedRequest | None:
        """The request under the person's key (None without one), its body included."""
        return keyed(self.staff.scope, self.idempotency_key, self.request, body)


def _finance_call(
    staff: Finance, request: Request, idempotency_key: IdempotencyKey = None
) -> FinanceCall:
    return FinanceCall(staff, request, idempotency_key)


Acting = Annotated[FinanceCall, Depends(_finance_call)]

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
