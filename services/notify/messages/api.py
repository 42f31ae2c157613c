"""Customer messages over HTTP: the message log of a refund (staff), resending an uncertain or
failed message (admin), and a customer's in-app feed (the platform, by API key)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from services.notify.deps import Admin, FeedPaging, FeedRows, Notify, Reader, Tenant
from services.notify.messages.application import SEALED_BODY, SEALED_TITLE
from services.notify.messages.schemas import (
    Feed,
    FeedItem,
    NotificationList,
    NotificationView,
    RefundId,
    Resend,
)
from shared.ids import parse_public_id
from shared.keyed import answer
from shared.problems import invalid, problem_responses
from shared.staff import staff_problem_responses

router = APIRouter(prefix="/v1")


def _refund_id(value: str, field: str) -> str:
    if parse_public_id("rf", value) is None:
        raise invalid(field, "invalid_id", "expected rf_<32 hex>")
    return value


@router.get(
    "/notifications",
    tags=["notifications"],
    response_model=NotificationList,
    summary="Every customer message of one refund and what became of it",
    responses=staff_problem_responses(401, 403, 422),
)
async def list_notifications(
    staff: Reader, refund_id: RefundId, notify: Notify
) -> NotificationList:
    """For auditors and admins: one entry per (step, channel), sent or not."""
    _refund_id(refund_id, "query.refund_id")
    found = await asyncio.to_thread(notify.messages.notifications_for, refund_id)
    return NotificationList(data=[NotificationView.of(entry) for entry in found])


@router.post(
    "/notifications/{notification_id}/resend",
    tags=["notifications"],
    status_code=202,
    response_model=NotificationView,
    summary="Send an uncertain or failed message again",
    responses={
        **staff_problem_responses(401, 403, 422),
        **problem_responses(404, 409),
    },
)
async def resend(
    notification_id: str, body: Resend, staff: Admin, notify: Notify
) -> NotificationView:
    """An admin's decision, recorded with their name: the message goes out once more.

    Only for `uncertain` (an attempt was cut off: check with the customer first) and
    `failed` messages; anything else is a 409.
    """
    _refund_id(body.refund_id, "body.refund_id")
    after = await asyncio.to_thread(
        notify.messages.request_resend,
        body.refund_id,
        notification_id,
        actor=f"staff:{staff.sub}",
    )
    return NotificationView.of(after)


@router.get(
    "/customers/{customer_id}/notifications",
    tags=["customer feed"],
    response_model=Feed,
    summary="A customer's in-app messages, newest first",
    responses=problem_responses(401, 422),
)
async def customer_feed(
    customer_id: Annotated[str, Path(max_length=200)],
    tenant: Tenant,
    request: Request,
    page: FeedPaging,
    notify: Notify,
    feed: FeedRows,
) -> JSONResponse:
    """What the platform shows in its app: every step of every refund of this customer,
    in their language. Only the calling platform's customers are visible."""

    def opened_page() -> tuple[list[dict[str, Any]], bool]:
        rows, has_more = feed.page(
            tenant,
            customer_id,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        # Stored sealed; shown opened, or `[erased]` once the customer was erased.
        for row in rows:
            row["title"] = notify.keys.show(row["title"], field=SEALED_TITLE)
            row["body"] = notify.keys.show(row["body"], field=SEALED_BODY)
        return rows, has_more

    rows, has_more = await asyncio.to_thread(opened_page)
    return answer(Feed.of(request, [FeedItem.of(row) for row in rows], has_more))
