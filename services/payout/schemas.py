"""Payout's staff API bodies (pydantic): finance requests, and the views staff read."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.payout.domain import PayoutStatus
from services.payout.providers.registry import PROVIDERS
from services.payout.reconcile import FindingKind
from shared.schemas import Listed, Strict, Text, example
from shared.vocabulary import TENANT_NAME

Note = Annotated[str, StringConstraints(max_length=2000, strip_whitespace=True)]
MAX_REPORT_CHARS = 5_000_000
EXAMPLE_PAYOUT = "po_3f0c1a2b4d5e6f708192a3b4c5d6e7f8"


# -- request bodies ---------------------------------------------------------------------------


class SwitchToStoreBalanceRequest(Strict):
    model_config = example({"consent_reference": "CS-2026-1187"})

    consent_reference: Text = Field(
        description="where the customer's consent to a store-balance refund is recorded"
    )


class ManualPaymentRequest(Strict):
    model_config = example({"reference": "BT-20261120-0042", "note": "paid by hand from ICBC"})

    reference: Text = Field(description="the payment's reference (e.g. the bank transfer's)")
    note: Note = Field(
        "", description="finance's note (part of the request; the payout records the reference)"
    )


class AbnormalRefundRequest(Strict):
    """Where WeChat Pay credits a refund it could not credit to the payer (ABNORMAL).

    The card's account and holder are passed on to WeChat Pay (encrypted with its key)
    and never stored: the payout records the type, the bank type and the account's last
    four digits.
    """

    model_config = example(
        {"type": "MERCHANT_BANK_CARD"},
        {
            "type": "USER_BANK_CARD",
            "bank_type": "ICBC_DEBIT",
            "bank_account": "6222021234567890123",
            "real_name": "张三",
        },
    )

    type: Literal["USER_BANK_CARD", "MERCHANT_BANK_CARD"] = Field(
        description="`USER_BANK_CARD`: the payer's card (give bank_type, bank_account and"
        " real_name); `MERCHANT_BANK_CARD`: the merchant's own, who pays the customer by hand"
    )
    bank_type: str | None = Field(
        None,
        validate_default=True,
        pattern=r"^[A-Z0-9_]{2,32}$",
        description="WeChat Pay's bank type of the payer's card, e.g. `ICBC_DEBIT`",
    )
    bank_account: SecretStr | None = Field(
        None, validate_default=True, description="the payer's card number (digits)"
    )
    real_name: SecretStr | None = Field(
        None, validate_default=True, description="the card holder's name"
    )

    @field_validator("bank_type", "bank_account", "real_name")
    @classmethod
    def _only_for_a_users_card(cls, value: Any, info: ValidationInfo) -> Any:
        wanted = info.data.get("type") == "USER_BANK_CARD"
        if wanted and value is None:
            raise ValueError(f"USER_BANK_CARD needs `{info.field_name}`")
        if not wanted and value is not None:
            raise ValueError(f"`{info.field_name}` is only for USER_BANK_CARD")
        return value

    @field_validator("bank_account")
    @classmethod
    def _digits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9]{8,32}", value.get_secret_value()):
            raise ValueError("a card number is 8-32 digits")  # never echo the number
        return value

    @field_validator("real_name")
    @classmethod
    def _name(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 1 <= len(value.get_secret_value().strip()) <= 64:
            raise ValueError("a holder's name is 1-64 characters")
        return value

    def masked_account(self) -> str | None:
        """What the payout records of the card: its last four digits."""
        if self.bank_account is None:
            return None
        return "****" + self.bank_account.get_secret_value()[-4:]

    def fingerprint(self) -> AbnormalRefundFingerprint:
        """What an Idempotency-Key compares: the request as recorded, no card number."""
        return AbnormalRefundFingerprint(
            type=self.type, bank_type=self.bank_type, account=self.masked_account()
        )


class AbnormalRefundFingerprint(BaseModel):
    type: str
    bank_type: str | None
    account: str | None


class ReconciliationRequest(Strict):
    model_config = example(
        {
            "day": "2026-11-20",
            "report": "merchant_refund_no,provider_reference,amount,currency,method,"
            "status,completed_at\n"
            f"{EXAMPLE_PAYOUT},gw_re_1,4200,CNY,alipay,success,2026-11-20T03:00:00Z\n",
        }
    )

    day: date = Field(description="the settlement day the report covers (UTC), YYYY-MM-DD")
    provider: str = Field(
        "gateway",
        max_length=40,
        description="whose file it is, read in that provider's own format: `gateway` (the "
        "sandbox gateway's CSV), `stripe`, `alipay` or `wechatpay`",
    )
    tenant: str | None = Field(
        None,
        pattern=TENANT_NAME.pattern,
        description="whose account the file is of (required for a tenant's own provider)",
    )
    report: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REPORT_CHARS,
        description="the file as text (a CSV: header line first)",
    )
    report_base64: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REPORT_CHARS * 4 // 3 + 4,
        description="the file's bytes in base64, for a file that is not UTF-8 text "
        "(Alipay's GBK CSV or its zip)",
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, provider: str) -> str:
        if provider != "gateway" and provider not in PROVIDERS:
            known = ", ".join(["gateway", *sorted(PROVIDERS)])
            raise ValueError(f"no payment provider {provider!r}; known: {known}")
        return provider

    @model_validator(mode="after")
    def _one_file(self) -> ReconciliationRequest:
        if (self.report is None) == (self.report_base64 is None):
            raise ValueError("give the file as exactly one of `report` and `report_base64`")
        if self.provider != "gateway" and self.tenant is None:
            raise ValueError("`tenant` names whose account a provider's file is of")
        return self

    def data(self) -> bytes:
        """The file's bytes; ValueError naming `report_base64` when it is no base64."""
        if self.report is not None:
            return self.report.encode("utf-8")
        try:
            return base64.b64decode(self.report_base64 or "", validate=True)
        except binascii.Error as error:
            raise ValueError(f"report_base64 is not base64: {error}") from None


class ReconciliationFetch(Strict):
    """Which bill payout fetches itself from a tenant's own provider account."""

    model_config = example({"provider": "alipay", "tenant": "acme", "day": "2026-11-20"})

    provider: str = Field(
        max_length=40,
        description="the provider whose bill is fetched: `stripe`, `alipay` or `wechatpay`",
    )
    tenant: str = Field(pattern=TENANT_NAME.pattern, description="whose account it is")
    day: date = Field(
        description="the settlement day (UTC), YYYY-MM-DD; a provider billing by Beijing date "
        "is asked for both bills that cover it, and only their lines of this UTC day count"
    )

    @field_validator("provider")
    @classmethod
    def _fetchable(cls, provider: str) -> str:
        if provider not in PROVIDERS:
            raise ValueError(f"no bill to fetch from {provider!r}; known: {', '.join(PROVIDERS)}")
        return provider


# -- views ------------------------------------------------------------------------------------


class MoneyView(BaseModel):
    amount: int = Field(description="minor units")
    currency: str


class Dispatch(BaseModel):
    merchant_refund_no: str
    route: str = Field(description="the payment method it went by")
    provider: str | None = Field(
        None, description="who it went to: `gateway`, `store_balance`, `stripe`, ..."
    )


class HistoryEntry(BaseModel):
    """One stored event of the payout: what happened, when, and its recorded facts."""

    type: str = Field(examples=["Dispatched", "AttemptFailed", "RetryRequested"])
    at: datetime
    version: int
    data: dict[str, Any]


class PayoutEntry(BaseModel):
    """A payout as the list shows it."""

    id: str = Field(examples=[EXAMPLE_PAYOUT])
    refund_id: str
    tenant: str
    status: PayoutStatus
    method: str
    amount: MoneyView
    merchant_refund_no: str
    created_at: datetime
    updated_at: datetime


class PayoutView(PayoutEntry):
    """One payout with its attempts, dispatches, outcome and the finance actions' actors."""

    approval_id: str
    original_method: str
    payment_reference: str
    payment_currency: str | None = Field(
        None, description="the route's billing currency when it differs from the order's"
    )
    settlement: MoneyView | None = Field(
        None, description="the converted amount the route is paid (a cross-border payout)"
    )
    conversion: dict[str, str | int] | None = Field(
        None,
        description="the recorded conversion: source/target amounts and currencies, rate,"
        " rate_source, rate_at, exact (unrounded, target major units) and rounding",
    )
    series: int = Field(description="attempt series (1, then one more per retry or switch)")
    attempts: int = Field(description="failed attempts in the current series")
    dispatches: list[Dispatch] = Field(description="every (number, route) that was (maybe) sent")
    provider_reference: str | None
    consent_reference: str | None
    outcome: dict[str, Any] | None = Field(
        description="paid: reference, paid_at, expected_arrival, via; failed: cause, failed_at;"
        " cancelled: cause, cancelled_at, actor"
    )
    actions: list[dict[str, Any]] = Field(description="finance actions, with their actors")
    abnormal_refund_allowed: bool = Field(
        False,
        description="whether WeChat Pay can re-route it to a bank card now"
        " (`POST /v1/payouts/{id}/abnormal-refund`)",
    )
    history: list[HistoryEntry] = Field(description="every event, oldest first")
    version: int


class PayoutList(Listed):
    data: list[PayoutEntry]


class FindingView(BaseModel):
    kind: FindingKind
    merchant_refund_no: str
    detail: str


class ReconciliationEntry(BaseModel):
    id: str = Field(examples=["rc_9d1c0b6f2e3a4b5c8d7e6f5a4b3c2d1e"])
    day: date
    digest: str = Field(description="SHA-256 of the report text")
    actor: str = Field(description="who reconciled it")
    recorded_at: datetime
    counts: dict[str, int] = Field(description="findings per kind")
    mismatches: int = Field(description="findings that are not `matched`")
    provider: str = Field("gateway", description="whose settlement file it was")
    tenant: str | None = Field(None, description="whose account, for a tenant's own provider")


class ReconciliationView(ReconciliationEntry):
    findings: list[FindingView]


class ReconciliationList(Listed):
    data: list[ReconciliationEntry]


class CallbackAck(BaseModel):
    id: str
    outcome: str


# -- provider accounts --------------------------------------------------------------------


class ProviderView(BaseModel):
    name: str = Field(examples=["stripe"])
    methods: list[str] = Field(description="the payment methods it serves", examples=[["card"]])
    account_schema: dict[str, Any] = Field(description="JSON Schema of the account's fields")


class ProviderList(BaseModel):
    data: list[ProviderView]


class ProviderAccountView(BaseModel):
    model_config = example(
        {
            "tenant": "acme",
            "provider": "stripe",
            "methods": ["card"],
            "active": True,
            "summary": {"secret_key": "sk_live_…4242", "webhook_secrets": "2 (…a1b2, …c3d4)"},
            "configured_by": "root",
            "configured_at": "2026-12-05T10:00:00Z",
            "removed_at": None,
        }
    )

    tenant: str
    provider: str
    methods: list[str]
    active: bool
    summary: dict[str, Any] = Field(description="what identifies the credentials; no secret")
    configured_by: str
    configured_at: datetime
    removed_at: datetime | None = None


class ProviderAccountList(BaseModel):
    data: list[ProviderAccountView]
