"""Notify's HTTP routes: the delivery log of a refund (staff), resending an uncertain or
failed message (admin), and a customer's in-app feed (the platform, by API key)."""

# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_router() at runtime.

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.notify.application import SEALED_BODY, SEALED_TITLE, NotifyApplication
from services.notify.feed import CustomerFeed
from shared.auth import ApiKeys
from shared.contracts import OCCURRENCE_DOC, Locale
from shared.http import Problem, problem_responses
from shared.ids import parse_public_id
from shared.keyed import invalid, one_cursor
from shared.readmodel import UnknownCursor
from shared.staff import Staff, StaffAuth, staff_problem_responses

READERS = ("auditor", "admin")
RESENDERS = ("admin",)
RefundId = Annotated[str, Query(examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"], max_length=100)]
NotificationStatus = Literal["pending", "sent", "failed", "uncertain"]


class NotificationView(BaseModel):
    id: str = Field(examples=["nt_523b4d7a64ca53dd92b98e54e63b84be"])
    object: Literal["notification"] = "notification"
    refund_id: str
    step: str = Field(examples=["paid"])
    occurrence: int = Field(1, examples=[1], description=OCCURRENCE_DOC)
    channel: Literal["email", "sms", "in_app"] = Field(examples=["email"])
    status: NotificationStatus = Field(
        description="sent; pending (due or being retried); failed (given up, see last_error); "
        "uncertain (an attempt was cut off: it may have gone out, and is not sent again "
        "unless resent)",
        examples=["sent"],
    )
    attempts: int = Field(examples=[1])
    last_error: str | None = Field(None, examples=[None])
    recipient: str | None = Field(
        None, examples=["l***@example.com"], description="masked, never plaintext"
    )
    locale: Locale | None = None
    template: str | None = Field(None, examples=["paid.email.zh-CN@1"])
    message_id: str | None = Field(
        None, description="the e-mail's Message-ID, or the SMS provider's message id"
    )
    sent_at: datetime | None = None


class NotificationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[NotificationView]


class Resend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refund_id: str = Field(
        max_length=100, examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"], description="its refund"
    )


class FeedItem(BaseModel):
    """One in-app message; its title and body read `[erased]` once the customer is erased."""

    id: str = Field(examples=["nt_9a0e7c1d2b3f4a5e6d7c8b9a0f1e2d3c"])
    object: Literal["customer_notification"] = "customer_notification"
    refund_id: str
    step: str = Field(examples=["approved"])
    locale: Locale
    title: str = Field(examples=["退款已批准"])
    body: str = Field(examples=["您的退款 ¥129.00 已批准，将退回您的支付宝账户。"])
    template: str = Field(examples=["approved.in_app.zh-CN@1"])
    created_at: datetime


class Feed(BaseModel):
    object: Literal["list"] = "list"
    url: str
    has_more: bool
    data: list[FeedItem]


def _view(entry: dict[str, Any]) -> NotificationView:
    return NotificationView(id=entry["notification_id"], **entry)


def _refund_id(value: str, field: str) -> str:
    if parse_public_id("rf", value) is None:
        raise invalid(field, "invalid_id", "expected rf_<32 hex>")
    return value


def build_router(
    app: NotifyApplication, keys: ApiKeys, auth: StaffAuth, feed: CustomerFeed
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Reader = Annotated[Staff, Depends(auth.dependency(*READERS))]
    Admin = Annotated[Staff, Depends(auth.dependency(*RESENDERS))]

    def tenant(authorization: Annotated[str | None, Header()] = None) -> str:
        return keys.tenant_for(authorization)

    Tenant = Annotated[str, Depends(tenant)]

    @router.get(
        "/notifications",
        tags=["notifications"],
        response_model=NotificationList,
        summary="Every customer message of one refund and what became of it",
        responses=staff_problem_responses(401, 403, 422),
    )
    async def list_notifications(staff: Reader, refund_id: RefundId) -> NotificationList:
        """For auditors and admins: one entry per (step, channel), sent or not."""
        _refund_id(refund_id, "query.refund_id")
        found = await asyncio.to_thread(app.notifications_for, refund_id)
        return NotificationList(data=[_view(entry) for entry in found])

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
    async def resend(notification_id: str, body: Resend, staff: Admin) -> NotificationView:
        """An admin's decision, recorded with their name: the message goes out once more.

        Only for `uncertain` (an attempt was cut off: check with the customer first) and
        `failed` messages; anything else is a 409.
        """
        _refund_id(body.refund_id, "body.refund_id")
        before = await asyncio.to_thread(app.notifications_for, body.refund_id)
        current = next((n for n in before if n["notification_id"] == notification_id), None)
        if current is None:
            raise Problem(
                404, "No such notification", f"No {notification_id} here.", kind="not-found"
            )
        if current["status"] not in ("uncertain", "failed"):
            raise Problem(
                409,
                "Not resendable",
                f"The message is {current['status']}; only uncertain or failed ones are resent.",
                kind="not-resendable",
            )
        after = await asyncio.to_thread(
            app.request_resend, body.refund_id, notification_id, actor=f"staff:{staff.sub}"
        )
        assert after is not None  # it existed a moment ago; messages are never removed
        return _view(after)

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
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        starting_after: Annotated[
            str | None, Query(max_length=100, description="a message id: older messages")
        ] = None,
        ending_before: Annotated[
            str | None, Query(max_length=100, description="a message id: newer messages")
        ] = None,
    ) -> JSONResponse:
        """What the platform shows in its app: every step of every refund of this customer,
        in their language. Only the calling platform's customers are visible."""
        one_cursor(starting_after, ending_before)

        def opened_page() -> tuple[list[dict[str, Any]], bool]:
            rows, has_more = feed.page(
                tenant,
                customer_id,
                limit=limit,
                starting_after=starting_after,
                ending_before=ending_before,
            )
            # Stored sealed; shown opened, or `[erased]` once the customer was erased.
            for row in rows:
                row["title"] = app.keys.show(row["title"], field=SEALED_TITLE)
                row["body"] = app.keys.show(row["body"], field=SEALED_BODY)
            return rows, has_more

        try:
            rows, has_more = await asyncio.to_thread(opened_page)
        except UnknownCursor as unknown:
            name = "starting_after" if starting_after else "ending_before"
            raise invalid(f"query.{name}", "unknown_cursor", f"no message {unknown}") from None
        items = [
            FeedItem(
                id=row["notification_id"],
                refund_id=row["refund_id"],
                step=row["step"],
                locale=row["locale"],
                title=row["title"],
                body=row["body"],
                template=row["template"],
                created_at=datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")),
            )
            for row in rows
        ]
        page = Feed(url=request.url.path, has_more=has_more, data=items)
        return JSONResponse(page.model_dump(mode="json"))

    return router
