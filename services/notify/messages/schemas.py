"""The shapes of the customer-message routes: a refund's message log, a resend, the in-app feed."""

# No `from __future__ import annotations`: FastAPI and pydantic read these at runtime.

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from services.notify.messages.steps import ChannelName, Status
from shared.contracts import OCCURRENCE_DOC, Locale
from shared.schemas import Listed, Strict

RefundId = Annotated[str, Query(examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"], max_length=100)]


class NotificationView(BaseModel):
    id: str = Field(examples=["nt_523b4d7a64ca53dd92b98e54e63b84be"])
    object: Literal["notification"] = "notification"
    refund_id: str
    step: str = Field(examples=["paid"])
    occurrence: int = Field(1, examples=[1], description=OCCURRENCE_DOC)
    channel: ChannelName = Field(examples=["email"])
    status: Status = Field(
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

    @classmethod
    def of(cls, entry: dict[str, Any]) -> "NotificationView":
        """One entry of `Messages.notifications_for`."""
        return cls(id=entry["notification_id"], **entry)


class NotificationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[NotificationView]


class Resend(Strict):
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

    @classmethod
    def of(cls, row: dict[str, Any]) -> "FeedItem":
        """One row of the customer feed, its texts already opened."""
        shown = ("refund_id", "step", "locale", "title", "body", "template")
        created_at = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        return cls(id=row["notification_id"], created_at=created_at, **{k: row[k] for k in shown})


class Feed(Listed):
    data: list[FeedItem]
