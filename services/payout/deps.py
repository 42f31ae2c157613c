"""The dependencies payout's routes take: the application, its read models, the callback key,
staff by role, and the paging and path parameters of its lists and resources."""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from typing import TYPE_CHECKING, Annotated, TypeAlias

from fastapi import Path

from services.payout.application import PayoutApplication
from services.payout.index import PayoutIndex, ReconciliationIndex
from services.payout.providers.gateway import CallbackKey
from services.payout.tenant_providers import TenantProviders
from shared.http import on_state
from shared.keyed import staff_command
from shared.paging import Page, cursor_paging
from shared.staff import staff_with

# Who may do what: finance (and admins) act on payouts; auditors read along.
FINANCE = ("finance", "admin")
READERS = ("finance", "auditor", "admin")

PayoutApp = Annotated[PayoutApplication, on_state("payout")]
Payouts = Annotated[PayoutIndex, on_state("payout_index")]
Reconciliations = Annotated[ReconciliationIndex, on_state("reconciliation_index")]
SigningKey = Annotated[CallbackKey, on_state("callback_key")]
Providers = Annotated[TenantProviders, on_state("tenant_providers")]
Reader = staff_with(*READERS)
Finance = staff_with(*FINANCE)
AccountAdmin = staff_with("admin")  # provider accounts hold a tenant's money: admins only
# A finance action asked for: who asks, under which Idempotency-Key (if any).
Acting = staff_command(*FINANCE)

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
