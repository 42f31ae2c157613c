"""The public contract on Kafka: a CloudEvents 1.0 envelope and versioned integration events.

Services publish these, never their private domain events, so internal refactors
never break subscribers. Each model's `TYPE` is the CloudEvents `type`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from shared.money import Money

CONTENT_TYPE = "application/cloudevents+json"
EVENT_ID_NAMESPACE = uuid.UUID("6f1b8a52-3c1e-4a7e-9d0f-2b7c1e5a9d11")

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])]
PaymentMethod = Literal["card", "alipay", "wechat_pay", "bank_transfer", "store_balance"]
Reason = Literal[
    "damaged",
    "quality_defect",
    "not_received",
    "wrong_item",
    "not_as_described",
    "changed_mind",
    "service_issue",
    "customer_error",
    "duplicate_charge",
    "special_circumstances",
    "other",
]
DesiredOutcome = Literal["full_refund", "partial_refund", "exchange", "compensation"]
Locale = Literal["zh-CN", "en"]  # the languages notify writes in
# A customer's language as a BCP 47 tag (`zh-CN`, `en`, `en-US`, `zh-Hans-CN`, `fr`): any is
# accepted; notify writes in the nearest `Locale` (same tag, else same language), else English.
LanguageTag = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", max_length=35),
    Field(examples=["zh-CN"], description="BCP 47 language tag, e.g. zh-CN, en, en-US"),
]


class MoneyModel(BaseModel):
    """Money on the wire: integer minor units and an ISO 4217 code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: StrictInt = Field(examples=[11900])
    currency: CurrencyCode

    @classmethod
    def of(cls, money: Money) -> MoneyModel:
        return cls(amount=money.amount, currency=money.currency)

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


class PaymentRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: PaymentMethod
    reference: str
    # The currency the route is billed in (a card issued in another currency); None: the
    # order's currency. When it differs, payout converts at a recorded rate.
    currency: CurrencyCode | None = None


class IntegrationEvent(BaseModel):
    """Base of every integration event; `refund_id` is the CloudEvents subject and record key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]

    refund_id: str
    tenant: str


# Personal data travels sealed: `pii:v1:<key id>:<ciphertext>` under the customer's key (see
# shared/keystore.py), bound to one of these field names, which a subscriber passes to open
# it. Once the customer is erased it opens to nothing, wherever a copy went.
SEALED_NAME = "customer.name"
SEALED_EMAIL = "customer.email"
SEALED_PHONE = "customer.phone"
SEALED_ADDRESS = "customer.address"
SEALED_DESCRIPTION = "description"
SEALED_EVIDENCE_DESCRIPTION = "evidence.description"
SEALED_EVIDENCE_NOTE = "evidence.note"
SEALED_STATEMENT = "appeal.statement"
SEALED_WITHDRAWAL_REASON = "withdrawal.reason"
SEALED_DOC = "sealed (`pii:v1:…`): open with the customer's key, field "


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


class ReviewApprovedV1(IntegrationEvent):
    """The refund was approved, by a rule or by people: the amount, the route it is paid
    back on, the policy rule and who decided."""

    TYPE: ClassVar[str] = "review.approved.v1"

    order_id: str
    amount: MoneyModel
    payment: PaymentRoute
    policy_version: str
    rule: str
    decided_by: str
    decided_at: datetime
    approvers: list[str] = Field(default_factory=list, description="people, in order")
    # Minor units per liable party (platform, merchant, carrier), when review split it.
    liability: dict[str, int] | None = None
    # Compensation granted on top of the refund (a coupon, not cash).
    coupon: MoneyModel | None = None


class ReviewRejectedV1(IntegrationEvent):
    """The refund was refused: the policy rule it broke, the explanation in each locale
    and who decided."""

    TYPE: ClassVar[str] = "review.rejected.v1"

    order_id: str
    policy_version: str
    rule: str
    explanation: dict[str, str]
    decided_by: str
    decided_at: datetime


class ReviewCaseOpenedV1(IntegrationEvent):
    """The policy could not decide alone: a person reviews the refund (status in_review)."""

    TYPE: ClassVar[str] = "review.case_opened.v1"

    order_id: str
    tier: Literal["general", "important", "major"]
    rule: str = Field(description="why it went to a person, e.g. manual.special_circumstances")
    policy_version: str
    risk_score: int
    refundable: MoneyModel
    deadline: datetime | None = None
    opened_at: datetime


class ReviewEvidenceRequestedV1(IntegrationEvent):
    """The reviewer needs more: the refund waits for the customer; the review clock pauses."""

    TYPE: ClassVar[str] = "review.evidence_requested.v1"

    order_id: str
    missing: list[str]
    message: str
    requested_by: str
    requested_at: datetime


class ReviewEvidenceReceivedV1(IntegrationEvent):
    """The evidence review asked for arrived: the case is back in review, its clock running.
    (Evidence sent when none was asked for is kept, and not announced.)"""

    TYPE: ClassVar[str] = "review.evidence_received.v1"

    order_id: str
    evidence_count: int = Field(ge=0, description="how many records this answer added")
    received_at: datetime


ESCALATED_ON_APPEAL = "appeal"  # ReviewEscalatedV1.reason when the customer's appeal reopens


class ReviewEscalatedV1(IntegrationEvent):
    """The case went up a tier (a reviewer's call, a missed deadline, or an appeal)."""

    TYPE: ClassVar[str] = "review.escalated.v1"

    order_id: str
    tier: Literal["general", "important", "major"]
    reason: str = Field(
        description=f"`{ESCALATED_ON_APPEAL}` when the customer's appeal reopened the case; "
        "otherwise the reviewer's words or the clock's (`deadline passed`)"
    )
    escalated_by: str
    escalated_at: datetime


class ReviewCompensationOfferedV1(IntegrationEvent):
    """A coupon instead of cash: the case is settled without a payout."""

    TYPE: ClassVar[str] = "review.compensation_offered.v1"

    order_id: str
    coupon: MoneyModel
    note: str
    offered_by: str
    offered_at: datetime


class ReviewSlaBreachedV1(IntegrationEvent):
    """Review missed its decision deadline for the case; it escalates."""

    TYPE: ClassVar[str] = "review.sla_breached.v1"

    order_id: str
    tier: str
    deadline: datetime
    breached_at: datetime


class ReviewRecoveryClaimedV1(IntegrationEvent):
    """The platform paid first; this party owes its share back."""

    TYPE: ClassVar[str] = "review.recovery_claimed.v1"

    order_id: str
    claim_id: str
    party: Literal["merchant", "carrier"]
    amount: MoneyModel
    claimed_at: datetime


class PayoutSucceededV1(IntegrationEvent):
    """The money went back on the payment route: amount, provider reference, expected arrival."""

    TYPE: ClassVar[str] = "payout.succeeded.v1"

    payout_id: str
    amount: MoneyModel
    method: PaymentMethod
    merchant_refund_no: str
    provider_reference: str
    paid_at: datetime
    expected_arrival: datetime
    # A cross-border payout: what the route was paid in its own currency, and the
    # conversion record (rate, rate_source, rate_at, exact, rounding, both amounts).
    settlement: MoneyModel | None = None
    fx: dict[str, str | int] | None = None


class PayoutFailedV1(IntegrationEvent):
    """The payout failed for good after its retries; finance decides what happens next."""

    TYPE: ClassVar[str] = "payout.failed.v1"

    payout_id: str
    amount: MoneyModel
    method: PaymentMethod
    cause: str
    attempts: int
    failed_at: datetime


OCCURRENCE_DOC = (
    "which time the refund went through this step: 2 for a second evidence request, a "
    "rejection upheld on appeal, a retried payout failing again; each is a message of its own"
)


class NotificationSentV1(IntegrationEvent):
    """A customer message left: which step, on which channel, to whom (masked) and with
    which template."""

    TYPE: ClassVar[str] = "notification.sent.v1"

    notification_id: str
    step: str
    occurrence: int = Field(1, ge=1, description=OCCURRENCE_DOC)
    channel: Literal["email", "sms", "in_app", "webhook"]
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
    channel: Literal["email", "sms", "in_app", "webhook"]
    attempts: int
    cause: str
    failed_at: datetime


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


EVENT_TYPES: dict[str, type[IntegrationEvent]] = {
    model.TYPE: model
    for model in (
        RefundRequestedV1,
        RefundWithdrawnV1,
        RefundEvidenceAddedV1,
        RefundAppealedV1,
        RefundReceiptConfirmedV1,
        CustomerErasedV1,
        ApiKeyIssuedV1,
        ApiKeyRevokedV1,
        ReviewApprovedV1,
        ReviewRejectedV1,
        ReviewCaseOpenedV1,
        ReviewEvidenceRequestedV1,
        ReviewEvidenceReceivedV1,
        ReviewEscalatedV1,
        ReviewCompensationOfferedV1,
        ReviewSlaBreachedV1,
        ReviewRecoveryClaimedV1,
        PayoutSucceededV1,
        PayoutFailedV1,
        NotificationSentV1,
        NotificationFailedV1,
    )
}


class CloudEvent(BaseModel):
    """CloudEvents 1.0 structured-mode envelope with this system's extensions."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="globally unique; stable when the same event is re-published")
    source: str = Field(description="the publishing service, e.g. 'intake'")
    type: str
    subject: str = Field(description="the refund id")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    tenant: str
    position: int = Field(ge=1, description="position in the source service's ledger")
    traceparent: str
    causationid: str | None = None
    correlationid: str

    def payload(self) -> IntegrationEvent:
        """The typed integration event; KeyError for a type this build does not know."""
        return EVENT_TYPES[self.type].model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)


def stable_event_id(source: str, originator_id: uuid.UUID, version: int) -> str:
    """Derived from the stored event, so a re-published event keeps its id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}/{originator_id}/{version}"))


def traceparent_for(refund_id: str, event_id: str) -> str:
    """W3C trace context: one trace per refund, one span per event — deterministic."""
    trace = uuid.uuid5(EVENT_ID_NAMESPACE, refund_id).hex
    span = uuid.UUID(event_id).hex[:16]
    return f"00-{trace}-{span}-01"


def envelope(
    event: IntegrationEvent,
    *,
    source: str,
    event_id: str,
    position: int,
    time: datetime,
    causation_id: str | None,
) -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source=source,
        type=event.TYPE,
        subject=event.refund_id,
        time=time,
        data=event.model_dump(mode="json"),
        tenant=event.tenant,
        position=position,
        traceparent=traceparent_for(event.refund_id, event_id),
        causationid=causation_id,
        correlationid=event.refund_id,
    )
