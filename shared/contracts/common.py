"""What integration events share: their base, money, routes, vocabularies, sealed-field names."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from shared.money import Money

# The four services, in the order a refund passes them (a CloudEvent's `source`).
Service = Literal["intake", "review", "payout", "notify"]
SERVICES: tuple[Service, ...] = ("intake", "review", "payout", "notify")

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


def fields_of(source: object, *names: str) -> dict[str, Any]:
    """`source`'s attributes `names`, for the fields of the same names of an integration
    event (a stored event's fields that are published as they are)."""
    return {name: getattr(source, name) for name in names}


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
