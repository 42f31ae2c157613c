"""Fault switches (POST /_sandbox/control): Stripe's failures on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass
class FaultState:
    fail_next: int = 0  # next N requests answer fail_status, recording nothing
    fail_status: int = 500
    retry_after_seconds: int = 1  # sent with an injected 429
    fail_after_commit_next: int = 0  # next N refunds are made, then answered 500
    timeout_after_commit_next: int = 0  # next N refunds are made, the answer stalls
    timeout_ms: int = 6000
    pending: bool = False  # new refunds answer `pending` and settle pending_ms later
    pending_ms: int = 1000  # long pending: set it high
    fail_refunds_next: int = 0  # next N new refunds end `failed`
    failure_reason: str = "expired_or_canceled_card"
    drop_webhooks_next: int = 0  # next N events are never delivered
    webhook_max_attempts: int = 5
    webhook_retry_ms: int = 1000
    default_payment_amount: int = 1_000_000  # of a payment nobody created here
    default_payment_currency: str = "usd"


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reset: bool = False
    fail_next: int | None = Field(None, ge=0)
    fail_status: int | None = Field(None, ge=400, le=599)
    retry_after_seconds: int | None = Field(None, ge=0)
    fail_after_commit_next: int | None = Field(None, ge=0)
    timeout_after_commit_next: int | None = Field(None, ge=0)
    timeout_ms: int | None = Field(None, ge=0, le=120_000)
    pending: bool | None = None
    pending_ms: int | None = Field(None, ge=0)
    fail_refunds_next: int | None = Field(None, ge=0)
    failure_reason: str | None = Field(
        None,
        pattern=r"^(lost_or_stolen_card|expired_or_canceled_card|charge_for_pending_refund_disputed"
        r"|insufficient_funds|declined|merchant_request|unknown)$",
    )
    drop_webhooks_next: int | None = Field(None, ge=0)
    webhook_max_attempts: int | None = Field(None, ge=1, le=20)
    webhook_retry_ms: int | None = Field(None, ge=0)
    default_payment_amount: int | None = Field(None, gt=0)
    default_payment_currency: str | None = Field(None, pattern=r"^[a-z]{3}$")


@dataclass(frozen=True)
class Plan:
    """How a new refund ends and after how long (None: within the request)."""

    status: str  # succeeded or failed
    failure_reason: str | None
    pending_seconds: float | None


class Faults:
    """Switches shared by the request threads; counters are consumed under a lock."""

    def __init__(self, default_payment_currency: str = "usd") -> None:
        self._lock = threading.Lock()
        # The currency of payments nobody created here, kept across a reset (a start option).
        self._currency = default_payment_currency
        self._state = FaultState(default_payment_currency=self._currency)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self._state, f.name) for f in fields(self._state)}

    def apply(self, change: ControlRequest) -> dict[str, Any]:
        with self._lock:
            if change.reset:
                self._state = FaultState(default_payment_currency=self._currency)
            for name, value in change.model_dump(exclude={"reset"}, exclude_none=True).items():
                setattr(self._state, name, value)
        return self.snapshot()

    def get(self, name: str) -> Any:
        with self._lock:
            return getattr(self._state, name)

    def take(self, counter: str) -> bool:
        with self._lock:
            left: int = getattr(self._state, counter)
            if left > 0:
                setattr(self._state, counter, left - 1)
            return left > 0

    def plan(self) -> Plan:
        with self._lock:
            state = self._state
            pending = state.pending_ms / 1000.0 if state.pending else None
            if state.fail_refunds_next > 0:
                state.fail_refunds_next -= 1
                return Plan("failed", state.failure_reason, pending)
            return Plan("succeeded", None, pending)
