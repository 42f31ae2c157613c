"""Fault switches (POST /control): the failures real providers exhibit, on demand."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.gateway.protocol import ControlRequest, FinalStatus


@dataclass(frozen=True)
class Plan:
    """How a newly accepted refund will end, and when (``None``: within the request)."""

    outcome: FinalStatus
    failure_reason: str | None
    delay_seconds: float | None


@dataclass(frozen=True)
class SettlementRules:
    extra_lines: int
    amount_overrides: dict[str, int]
    status_overrides: dict[str, str]
    omit: frozenset[str]


@dataclass
class FaultState:
    fail_next: int = 0
    fail_status: int = 503
    retry_after_seconds: int = 1
    fail_after_commit_next: int = 0
    delay_ms: int = 0
    timeout_next: int = 0
    timeout_after_commit_next: int = 0
    timeout_ms: int = 6000
    close_next: int = 0
    close_reason: str = "ACCOUNT_CLOSED"
    abnormal_next: int = 0
    abnormal_reason: str = "USER_ACCOUNT_ABNORMAL"
    async_mode: bool = False
    completion_delay_ms: int = 1000
    drop_callbacks_next: int = 0
    callback_max_attempts: int = 5
    callback_retry_ms: int = 1000
    settlement_extra_lines: int = 0
    settlement_amount_overrides: dict[str, int] = field(default_factory=dict)
    settlement_status_overrides: dict[str, str] = field(default_factory=dict)
    settlement_omit: list[str] = field(default_factory=list)
    # Standing faults: each request (or completion) is affected with this probability.
    fail_ratio: float = 0.0
    fail_after_commit_ratio: float = 0.0
    timeout_after_commit_ratio: float = 0.0
    drop_callbacks_ratio: float = 0.0
    seed: int | None = None


class Faults:
    """Fault switches shared by all request threads; counters are consumed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()
        self._random = random.Random()

    def _snapshot(self) -> dict[str, Any]:
        state = vars(self._state)
        return {
            name: value.copy() if isinstance(value, dict | list) else value
            for name, value in state.items()
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def apply(self, change: ControlRequest) -> dict[str, Any]:
        with self._lock:
            if change.reset:
                self._state = FaultState()
            updates = change.model_dump(exclude={"reset"}, exclude_none=True)
            for name, value in updates.items():
                setattr(self._state, name, value)
            if "seed" in updates:
                self._random.seed(updates["seed"])
            return self._snapshot()

    def _chance(self, ratio: float) -> bool:
        return ratio > 0 and self._random.random() < ratio

    def delay_seconds(self) -> float:
        with self._lock:
            return self._state.delay_ms / 1000.0

    def take_failure(self) -> tuple[int, int] | None:
        """Consume one fail_next token: the status to answer with and its Retry-After."""
        with self._lock:
            if self._state.fail_next > 0:
                self._state.fail_next -= 1
            elif not self._chance(self._state.fail_ratio):
                return None
            return self._state.fail_status, self._state.retry_after_seconds

    def take_failure_after_commit(self) -> bool:
        with self._lock:
            if self._state.fail_after_commit_next > 0:
                self._state.fail_after_commit_next -= 1
                return True
            return self._chance(self._state.fail_after_commit_ratio)

    def take_timeout(self, *, after_commit: bool) -> float | None:
        """Consume a timeout token; the seconds to stall the answer for."""
        name = "timeout_after_commit_next" if after_commit else "timeout_next"
        with self._lock:
            left = getattr(self._state, name)
            if left > 0:
                setattr(self._state, name, left - 1)
            elif not (after_commit and self._chance(self._state.timeout_after_commit_ratio)):
                return None
            return self._state.timeout_ms / 1000.0

    def plan(self) -> Plan:
        """Decide a new refund's fate, consuming a close/abnormal token if one is set."""
        with self._lock:
            state = self._state
            delay = state.completion_delay_ms / 1000.0 if state.async_mode else None
            if state.close_next > 0:
                state.close_next -= 1
                return Plan("closed", state.close_reason, delay)
            if state.abnormal_next > 0:
                state.abnormal_next -= 1
                return Plan("abnormal", state.abnormal_reason, delay)
            return Plan("success", None, delay)

    def take_dropped_callback(self) -> bool:
        with self._lock:
            if self._state.drop_callbacks_next > 0:
                self._state.drop_callbacks_next -= 1
                return True
            return self._chance(self._state.drop_callbacks_ratio)

    def callback_policy(self) -> tuple[int, float]:
        """Delivery attempts allowed per callback, and the first retry's delay in seconds."""
        with self._lock:
            return self._state.callback_max_attempts, self._state.callback_retry_ms / 1000.0

    def settlement_rules(self) -> SettlementRules:
        with self._lock:
            state = self._state
            return SettlementRules(
                extra_lines=state.settlement_extra_lines,
                amount_overrides=dict(state.settlement_amount_overrides),
                status_overrides=dict(state.settlement_status_overrides),
                omit=frozenset(state.settlement_omit),
            )
