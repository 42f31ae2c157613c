"""The integration events intake publishes (refunds.intake.v1), and the parts they carry."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import (
    SEALED_DOC,
    SEALED_EMAIL,
    SEALED_EVIDENCE_DESCRIPTION,
    SEALED_EVIDENCE_NOTE,
    SEALED_PHONE,
    SEALED_STATEMENT,
    SEALED_WITHDRAWAL_REASON,
    IntegrationEvent,
    LanguageTag,
    MoneyModel,
    PaymentRoute,
)
from shared.contracts.returns import ReturnShippedV1


class CustomerContact(BaseModel):
    """Where notify reaches the customer; the addresses travel sealed, never in plaintext."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = Field(None, description=SEALED_DOC + f"`{SEALED_EMAIL}`")
    phone: str | None = Field(None, description=SEALED_DOC + f"`{SEALED_PHONE}`")
    locale: LanguageTag = "zh-CN"


class RefundedItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    quantity: int


class EvidenceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    url: str
    sha256: str | None = None
    captured_at: datetime | None = None
    sku: str | None = None
    description: str = Field("", description=SEALED_DOC + f"`{SEALED_EVIDENCE_DESCRIPTION}`")


class OrderLine(BaseModel):
    """An item of the order as the platform sold it (what review's policy needs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    category: str
    quantity: int
    unit_price: MoneyModel
    custom_made: bool = False
    service_start: datetime | None = None
    service_end: datetime | None = None


class RefundRequestedV1(IntegrationEvent):
    """A platform asked for a refund: the order, items, amount, reason and the customer's
    (sealed) contact."""

    TYPE: ClassVar[str] = "refund.requested.v1"

    order_id: str
    customer_id: str
    amount: MoneyModel
    paid: MoneyModel
    payment: PaymentRoute
    items: list[RefundedItem]
    reason: str
    desired_outcome: str
    channel: str
    customer: CustomerContact
    requested_at: datetime
    paid_at: datetime | None = None
    delivered_at: datetime | None = None
    order_lines: list[OrderLine] = Field(default_factory=list)
    shipping_fee: MoneyModel | None = None
    discount: MoneyModel | None = None
    evidence: list[EvidenceRecord] = Field(default_factory=list)
    # A staff member who entered the request for the customer: they may not approve it.
    raised_by: str | None = None


class RefundWithdrawnV1(IntegrationEvent):
    """The customer withdrew the request before payout; its reservation was released."""

    TYPE: ClassVar[str] = "refund.withdrawn.v1"

    order_id: str
    reason: str = Field(description=SEALED_DOC + f"`{SEALED_WITHDRAWAL_REASON}` (or empty)")
    actor: str
    withdrawn_at: datetime


class RefundEvidenceAddedV1(IntegrationEvent):
    """The customer sent evidence (photos, documents) for their refund."""

    TYPE: ClassVar[str] = "refund.evidence_added.v1"

    order_id: str
    evidence: list[EvidenceRecord]
    note: str = Field(description=SEALED_DOC + f"`{SEALED_EVIDENCE_NOTE}` (or empty)")
    actor: str
    added_at: datetime


class RefundAppealedV1(IntegrationEvent):
    """A rejection was appealed: the refund goes back to (manual) review."""

    TYPE: ClassVar[str] = "refund.appealed.v1"

    order_id: str
    amount: MoneyModel
    statement: str = Field(description=SEALED_DOC + f"`{SEALED_STATEMENT}`")
    appealed_rule: str = Field(description="the rule the appealed rejection cited")
    actor: str
    appealed_at: datetime


class RefundReceiptConfirmedV1(IntegrationEvent):
    """The customer confirmed the refund reached them: the refund is closed."""

    TYPE: ClassVar[str] = "refund.receipt_confirmed.v1"

    order_id: str
    actor: str
    confirmed_at: datetime


class CustomerErasedV1(IntegrationEvent):
    """A customer's personal data was erased: their key is gone, so everything sealed under it
    (on every topic, in every store) opens to nothing. Subscribers stop what they still meant
    to send them. Amounts and decisions are untouched.

    It is about a customer, not one refund: `refund_id` (the subject and record key) is the
    id of the customer's erasure record, `ce_…`; `refund_ids` are the refunds it concerns.
    """

    TYPE: ClassVar[str] = "customer.erased.v1"

    customer_id: str
    refund_ids: list[str] = Field(description="the customer's refunds at the time of erasure")
    key_ids: list[str] = Field(description="the erased keys (values sealed under them are gone)")
    actor: str = Field(description="who erased, e.g. staff:alice")
    erased_at: datetime


class ApiKeyIssuedV1(IntegrationEvent):
    """Intake issued a platform API key (`refunds api-keys create`). Other services that answer
    platforms (notify) keep their own table of valid keys from these, never reading intake's store.

    It is about a key, not a refund: `refund_id` (the subject and record key) is the key's id,
    `ak_…`. Only the key's SHA-256 travels; the key itself is seen once, by whoever created it.
    """

    TYPE: ClassVar[str] = "api_key.issued.v1"

    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex")
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    actor: str = Field(description="who issued it, e.g. cli:ops")
    issued_at: datetime


class ApiKeyRevokedV1(IntegrationEvent):
    """Intake revoked a platform API key: from now on it authenticates nowhere. `refund_id` is
    the key's id (`ak_…`, as in `api_key.issued.v1`); revocation is final."""

    TYPE: ClassVar[str] = "api_key.revoked.v1"

    actor: str = Field(description="who revoked it")
    revoked_at: datetime


# What intake publishes, in the order subscribers see the types listed.
PUBLISHED: tuple[type[IntegrationEvent], ...] = (
    RefundRequestedV1,
    RefundWithdrawnV1,
    RefundEvidenceAddedV1,
    RefundAppealedV1,
    RefundReceiptConfirmedV1,
    CustomerErasedV1,
    ApiKeyIssuedV1,
    ApiKeyRevokedV1,
    ReturnShippedV1,
)
