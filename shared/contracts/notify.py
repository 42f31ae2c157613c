"""The integration events notify publishes (refunds.notify.v1): customer messages."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.contracts.common import IntegrationEvent, Locale
from shared.vocabulary import CustomerChannel

# The published schema has always admitted "webhook" besides the customer's channels.
NotificationChannel = Literal[CustomerChannel, "webhook"]

OCCURRENCE_DOC = (
    "which time the refund went through this step: 2 for a second evidence request, a "
    "rejection upheld on appeal, a retried payout failing again; each is a message of its own"
)


class NotificationSentV1(IntegrationEvent):
    """A customer message left: which step, on which channel, to whom (masked) and with
    which template. Published only where the deployment asks for it
    (REFUNDS_PUBLISHED_EVENTS); by default notify publishes the failures alone."""

    TYPE: ClassVar[str] = "notification.sent.v1"

    notification_id: str
    step: str
    occurrence: int = Field(1, ge=1, description=OCCURRENCE_DOC)
    channel: NotificationChannel
    recipient: str = Field(description="masked address, never the plaintext contact")
    locale: Locale
    template: str
    sent_at: datetime


class NotificationFailedV1(IntegrationEvent):
    """A customer message given up for good: refused, or still failing after every retry."""

    TYPE: ClassVar[str] = "notification.failed.v1"

    notification_id: str
    step: str
    occurrence: int = Field(1, ge=1, description=OCCURRENCE_DOC)
    channel: NotificationChannel
    attempts: int
    cause: str
    failed_at: datetime


PUBLISHED: tuple[type[IntegrationEvent], ...] = (NotificationSentV1, NotificationFailedV1)
