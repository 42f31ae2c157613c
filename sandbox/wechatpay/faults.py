"""Fault switches (POST /sandbox/control): WeChat Pay's failures, on demand or by chance."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass
class FaultState:
    system_error_next: int = 0  # 500 SYSTEM_ERROR before anything is recorded
    frequency_limited_next: int = 0  # 429 FREQUENCY_LIMITED
    not_enough_next: int = 0  # 403 NOT_ENOUGH: the merchant's balance is too low
    system_error_after_commit_next: int = 0  # 500 although the refund was recorded
    timeout_after_commit_next: int = 0  # the refund is recorded, the answer stalls
    timeout_ms: int = 6000
    processing_ms: int = 0  # how long refunds stay PROCESSING (0: final in the answer)
    abnormal_next: int = 0  # the next refunds end ABNORMAL
    closed_next: int = 0  # the next refunds end CLOSED
    drop_callbacks_next: int = 0
    missigned_callbacks_next: int = 0  # sent with a wrong signature on every attempt
    signtest_next: int = 0  # preceded by a WECHATPAY/SIGNTEST/ probe
    signtest_ratio: float = 0.02  # like the real service: now and then, a probe
    callback_max_attempts: int = 5
    callback_retry_ms: int = 1000
    answer_serial: str = "public_key_id"  # or "certificate": how answers name our key
    seed: int | None = None


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reset: bool = False
    system_error_next: int | None = Field(default=None, ge=0)
    frequency_limited_next: int | None = Field(default=None, ge=0)
    not_enough_next: int | None = Field(default=None, ge=0)
    system_error_after_commit_next: int | None = Field(default=None, ge=0)
    timeout_after_commit_next: int | None = Field(default=None, ge=0)
    timeout_ms: int | None = Field(default=None, ge=0, le=60000)
    processing_ms: int | None = Field(default=None, ge=0)
    abnormal_next: int | None = Field(default=None, ge=0)
    closed_next: int | None = Field(default=None, ge=0)
    drop_callbacks_next: int | None = Field(default=None, ge=0)
    missigned_callbacks_next: int | None = Field(default=None, ge=0)
    signtest_next: int | None = Field(default=None, ge=0)
    signtest_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    callback_max_attempts: int | None = Field(default=None, ge=1, le=15)
    callback_retry_ms: int | None = Field(default=None, ge=0)
    answer_serial: str | None = Field(default=None, pattern="^(public_key_id|certificate)$")
    seed: int | None = None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = FaultState()
        self._random = random.Random()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self.state, f.name) for f in fields(self.state)}

    def apply(self, change: ControlRequest) -> dict[str, Any]:
        with self._lock:
            if change.reset:
                self.state = FaultState()
            updates = change.model_dump(exclude={"reset"}, exclude_none=True)
            for name, value in updates.items():
                setattr(self.state, name, value)
            if "seed" in updates:
                self._random.seed(updates["seed"])
        return self.snapshot()

    def take(self, name: str) -> bool:
        """Consume one token of a `*_next` counter."""
        with self._lock:
            left = getattr(self.state, name)
            if left > 0:
                setattr(self.state, name, left - 1)
                return True
            return False

    def get(self, name: str) -> Any:
        with self._lock:
            return getattr(self.state, name)

    def outcome(self) -> str:
        if self.take("closed_next"):
            return "CLOSED"
        if self.take("abnormal_next"):
            return "ABNORMAL"
        return "SUCCESS"

    def plan_notice(self) -> tuple[bool, bool, bool]:
        """(dropped, preceded by a SIGNTEST probe, mis-signed) for a new notification."""
        dropped = self.take("drop_callbacks_next")
        probe = self.take("signtest_next")
        with self._lock:
            ratio = self.state.signtest_ratio
            probe = probe or (ratio > 0 and self._random.random() < ratio)
        # One fault per notification, so each switch's token lands where a test expects it.
        return dropped, probe, not probe and self.take("missigned_callbacks_next")
