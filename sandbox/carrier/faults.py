"""Fault switches (POST /sandbox/control): what a tracking provider does wrong, on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sandbox.carrier.protocol import ControlRequest


@dataclass
class FaultState:
    drop_push_next: int = 0
    duplicate_push_next: int = 0
    stale_push_next: int = 0
    wrong_salt_next: int = 0
    query_fail_next: int = 0
    query_fail_code: str = "502"
    query_http_error_next: int = 0
    query_http_status: int = 503
    # Kuaidi100 tries again 30 minutes after a failed push, three times; the sandbox is quicker.
    push_max_attempts: int = 4
    push_retry_ms: int = 1000


@dataclass(frozen=True)
class PushFaults:
    """The next push: dropped, sent twice, followed by an older trail, or mis-signed."""

    drop: bool = False
    duplicate: bool = False
    stale: bool = False
    wrong_salt: bool = False


class Faults:
    """Fault switches shared by all request threads; counters are consumed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(vars(self._state))

    def apply(self, change: ControlRequest) -> dict[str, Any]:
        with self._lock:
            if change.reset:
                self._state = FaultState()
            for name, value in change.model_dump(exclude={"reset"}, exclude_none=True).items():
                setattr(self._state, name, value)
        return self.snapshot()

    def _take(self, name: str) -> bool:
        left = getattr(self._state, name)
        if left > 0:
            setattr(self._state, name, left - 1)
        return left > 0

    def take_push(self) -> PushFaults:
        """The faults that apply to the next push, each consuming one of its tokens."""
        with self._lock:
            return PushFaults(
                drop=self._take("drop_push_next"),
                duplicate=self._take("duplicate_push_next"),
                stale=self._take("stale_push_next"),
                wrong_salt=self._take("wrong_salt_next"),
            )

    def take_query_failure(self) -> int | str | None:
        """A query to fail: an int is a bare HTTP status, a str a Kuaidi100 returnCode."""
        with self._lock:
            if self._take("query_http_error_next"):
                return self._state.query_http_status
            if self._take("query_fail_next"):
                return self._state.query_fail_code
            return None

    def push_policy(self) -> tuple[int, float]:
        """Attempts allowed per push, and the seconds between attempts."""
        with self._lock:
            return self._state.push_max_attempts, self._state.push_retry_ms / 1000.0
