"""Notify's staff read of a tenant's webhook endpoints (admins): each endpoint's status, why
and when it was disabled, since when it has been failing, and how many of its deliveries
failed for good — for the staff console. Platforms manage their own endpoints (api.py)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.notify.deps import Admin, Notify, WebhookLists
from services.notify.webhooks.index import WebhookIndex
from services.notify.webhooks.schemas import ENDPOINT_EXAMPLE, EndpointView, endpoint_view
from shared.schemas import example
from shared.staff import staff_problem_responses

ENDPOINTS_SHOWN = 100
FAILURES_COUNTED = 100  # beyond this, "more than" is what an admin needs to know

router = APIRouter(
    prefix="/v1/admin", tags=["webhooks"], responses=staff_problem_responses(401, 403)
)


class EndpointHealth(EndpointView):
    failed_deliveries: int = Field(
        description=f"deliveries given up on (at most {FAILURES_COUNTED})"
    )
    more_failed: bool = Field(description=f"more than {FAILURES_COUNTED} deliveries failed")


class TenantEndpoints(BaseModel):
    model_config = example(
        {
            "object": "list",
            "tenant": "acme",
            "has_more": False,
            "data": [
                {
                    "id": ENDPOINT_EXAMPLE,
                    "object": "webhook_endpoint",
                    "url": "https://hooks.example.com/refunds",
                    "event_types": ["refund.requested.v1"],
                    "description": "",
                    "alert_email": None,
                    "status": "disabled",
                    "disabled_reason": "failing",
                    "disabled_at": "2026-11-20T10:00:00Z",
                    "failing_since": "2026-11-17T10:00:00Z",
                    "previous_secret_expires_at": None,
                    "created_at": "2026-11-01T09:00:00Z",
                    "failed_deliveries": 12,
                    "more_failed": False,
                }
            ],
        }
    )

    object: str = "list"
    tenant: str
    data: list[EndpointHealth]
    has_more: bool


def _health(index: WebhookIndex, notify: Notify, tenant: str) -> TenantEndpoints:
    found = index.endpoints.page(tenant, limit=ENDPOINTS_SHOWN)
    shown = []
    for endpoint_id in found.ids:
        failed = index.deliveries.page(tenant, endpoint_id, limit=FAILURES_COUNTED, state="failed")
        view = endpoint_view(notify.webhooks.endpoint(endpoint_id))
        shown.append(
            EndpointHealth(
                **view.model_dump(), failed_deliveries=len(failed.ids), more_failed=failed.has_more
            )
        )
    return TenantEndpoints(tenant=tenant, data=shown, has_more=found.has_more)


@router.get(
    "/webhook_endpoints",
    response_model=TenantEndpoints,
    summary="A tenant's webhook endpoints with their health (admins)",
)
async def tenant_endpoints(
    staff: Admin,
    notify: Notify,
    index: WebhookLists,
    tenant: Annotated[str, Query(min_length=1, max_length=200)],
) -> TenantEndpoints:
    """Newest first, enabled and disabled alike; secrets are never shown."""
    return await asyncio.to_thread(_health, index, notify, tenant)
