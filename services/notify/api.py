"""Notify's HTTP routes: the delivery log of one refund (thin; queries live in the application)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.notify.application import NotifyApplication
from shared.contracts import Locale
from shared.http import Problem
from shared.ids import parse_public_id


class NotificationView(BaseModel):
    id: str = Field(examples=["nt_523b4d7a64ca53dd92b98e54e63b84be"])
    object: Literal["notification"] = "notification"
    refund_id: str
    step: str = Field(examples=["paid"])
    channel: str = Field(examples=["email"])
    recipient: str = Field(examples=["l***@example.com"], description="masked, never plaintext")
    locale: Locale
    template: str = Field(examples=["paid.email.zh-CN@1"])
    message_id: str = Field(description="the e-mail's Message-ID header")
    sent_at: datetime


class NotificationList(BaseModel):
    data: list[NotificationView]


def build_router(app: NotifyApplication) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["notifications"])

    # TODO(auth issue): require a staff JWT with role `auditor` or `admin`; open until then.
    @router.get("/notifications", response_model=NotificationList)
    async def list_notifications(
        refund_id: Annotated[str, Query(examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"])],
    ) -> NotificationList:
        if parse_public_id("rf", refund_id) is None:
            raise Problem(
                422,
                "Invalid request",
                "1 field(s) failed validation.",
                kind="validation",
                errors=[
                    {"field": "refund_id", "code": "invalid_id", "message": "expected rf_<32 hex>"}
                ],
            )
        sent = await asyncio.to_thread(app.notifications_for, refund_id)
        return NotificationList(
            data=[NotificationView(id=entry["notification_id"], **entry) for entry in sent]
        )

    return router
