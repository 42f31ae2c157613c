"""The gateway's protocol: names, headers, request models and the callback signature."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import PaymentMethod

LEDGER_FILE = "gateway-ledger.sqlite"
REPLAY_HEADER = "Idempotent-Replayed"
SIGNATURE_HEADER = "Gateway-Signature"
CALLBACK_ID_HEADER = "Gateway-Callback-Id"
# A fixed, public development value: anything signed with it proves nothing outside a sandbox.
DEFAULT_CALLBACK_SECRET = "sandbox-dev-callback-secret"  # noqa: S105 - public by design

RefundStatus = Literal["processing", "success", "closed", "abnormal"]
FinalStatus = Literal["success", "closed", "abnormal"]
FAILED_STATUSES = ("closed", "abnormal")
LEDGER_COLUMNS = (
    "merchant_refund_no",
    "provider_reference",
    "amount",
    "currency",
    "method",
    "payment_reference",
    "executed_at",
)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret`` (the ``v1`` value)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Gateway-Signature`` header value: ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def callback_secret_from_env() -> str:
    secret = os.environ.get("SANDBOX_CALLBACK_SECRET", DEFAULT_CALLBACK_SECRET)
    if not secret.strip():
        raise ValueError("SANDBOX_CALLBACK_SECRET must not be empty")
    return secret


Counter = Annotated[int, Field(strict=True, ge=0)]
Millis = Annotated[int, Field(strict=True, ge=0, le=600_000)]
Flag = Annotated[bool, Field(strict=True)]
Reason = Annotated[str, Field(strict=True, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
RefundNo = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
Ratio = Annotated[float, Field(ge=0, le=1)]


class RefundRequest(BaseModel):
    """A merchant's refund instruction, validated as strictly as a real provider would."""

    model_config = ConfigDict(extra="forbid")

    merchant_refund_no: RefundNo
    amount: Annotated[int, Field(strict=True, gt=0)]
    currency: Annotated[str, Field(strict=True, pattern=r"^[A-Z]{3}$")]
    method: PaymentMethod
    payment_reference: Annotated[str, Field(strict=True, min_length=1)]
    notify_url: (
        Annotated[str, Field(strict=True, max_length=2048, pattern=r"^https?://[^\s/]+\S*$")] | None
    ) = None


class ControlRequest(BaseModel):
    """Fault switches; omitted fields keep their current value (see sandbox/GATEWAY.md)."""

    model_config = ConfigDict(extra="forbid")

    fail_next: Counter | None = None
    fail_status: Annotated[int, Field(strict=True, ge=400, le=599)] | None = None
    retry_after_seconds: Annotated[int, Field(strict=True, ge=0, le=3600)] | None = None
    fail_after_commit_next: Counter | None = None
    delay_ms: Millis | None = None
    timeout_next: Counter | None = None
    timeout_after_commit_next: Counter | None = None
    timeout_ms: Millis | None = None
    close_next: Counter | None = None
    close_reason: Reason | None = None
    abnormal_next: Counter | None = None
    abnormal_reason: Reason | None = None
    async_mode: Flag | None = None
    completion_delay_ms: Millis | None = None
    drop_callbacks_next: Counter | None = None
    callback_max_attempts: Annotated[int, Field(strict=True, ge=1, le=20)] | None = None
    callback_retry_ms: Millis | None = None
    settlement_extra_lines: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    settlement_amount_overrides: dict[RefundNo, Annotated[int, Field(strict=True)]] | None = None
    settlement_status_overrides: dict[RefundNo, RefundStatus] | None = None
    settlement_omit: list[RefundNo] | None = None
    fail_ratio: Ratio | None = None
    fail_after_commit_ratio: Ratio | None = None
    timeout_after_commit_ratio: Ratio | None = None
    drop_callbacks_ratio: Ratio | None = None
    seed: Annotated[int, Field(strict=True)] | None = None
    reset: Flag = False


class ConflictError(Exception):
    """A merchant_refund_no was reused with different parameters."""
