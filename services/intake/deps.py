"""What intake's routes depend on: the application, its read models, the caller, the settings.

The composition root (bootstrap.py) puts each object on `http.state`; routes declare
the aliases below and never build or look up one themselves.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from typing import TYPE_CHECKING, Annotated, TypeAlias

from fastapi import Depends, Path, Query
from pydantic import AwareDatetime

from services.intake.analytics import RefundFacts
from services.intake.application import IntakeApplication
from services.intake.domain import Status
from services.intake.index import ListQuery, RefundIndex
from services.intake.return_analytics import ReturnFacts
from services.intake.settings import IntakeSettings
from shared.auth import Tenant as Tenant
from shared.http import on_state
from shared.keyed import PlatformCommand, staff_command
from shared.paging import Page, cursor_paging
from shared.staff import staff_with

IntakeApp = Annotated[IntakeApplication, on_state("intake")]
Index = Annotated[RefundIndex, on_state("index")]
Facts = Annotated[RefundFacts, on_state("facts")]
ReturnFactsModel = Annotated[ReturnFacts, on_state("return_facts")]
Settings = Annotated[IntakeSettings, on_state("settings")]
# Intake's list: 10 refunds a page, newest first, both ways.
if TYPE_CHECKING:  # what a route gets from the paging alias
    RefundPaging: TypeAlias = Page
else:
    RefundPaging = cursor_paging(default_limit=10, item="refund", backwards=True)


def _refund_query(
    tenant: Tenant,
    page: RefundPaging,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
) -> ListQuery:
    # The filters in ListQuery's own order (they have its fields' names).
    return ListQuery(tenant, page, order_id, status, customer_id, created_after, created_before)


# The page of the tenant's refunds a list request asks for, with its filters.
RefundQuery = Annotated[ListQuery, Depends(_refund_query)]

# A platform's command: its tenant (by API key) and its Idempotency-Key.
Command = PlatformCommand
Auditor = staff_with("auditor", "admin")
# Refund analytics are aggregates without personal data: finance reads them too.
Analyst = staff_with("finance", "auditor", "admin")
# Staff who read a refund whole (the console's case page): everyone who works on refunds.
StaffReader = staff_with("reviewer", "senior_reviewer", "finance", "auditor", "admin", "warehouse")
Erasing = staff_command("admin")  # only an admin erases a customer's personal data
KeyAdmin = staff_with("admin")  # platform API keys: listed, issued and revoked by admins
KeyCommand = staff_command("admin")

RefundId = Annotated[
    str, Path(description="the refund's id", examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"])
]
