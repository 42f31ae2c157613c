"""The emulator's control switches: the faults Alipay shows, injected on demand."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Switches(BaseModel):
    """Every switch and its default. Counters (`*_next`) are used up one per request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fail_next: int = Field(default=0, ge=0)  # answer HTTP `fail_status`, recording nothing
    fail_status: int = Field(default=503, ge=400, le=599)
    system_error_next: int = Field(default=0, ge=0)  # 40004 ACQ.SYSTEM_ERROR, recording nothing
    timeout_after_commit_next: int = Field(default=0, ge=0)  # record, stall, answer
    timeout_ms: int = Field(default=6000, ge=0, le=60000)
    balance_short_next: int = Field(default=0, ge=0)  # 40004 ACQ.SELLER_BALANCE_NOT_ENOUGH
    processing_next: int = Field(default=0, ge=0)  # fund_change N, paid later
    processing_ms: int = Field(default=2000, ge=0, le=600000)
    drop_notifications_next: int = Field(default=0, ge=0)  # paid, but no notification is ever sent
    missign_notifications_next: int = Field(default=0, ge=0)  # notifications with a wrong `sign`
    notify_max_attempts: int = Field(default=5, ge=1, le=20)
    notify_retry_ms: int = Field(default=1000, ge=10, le=600000)
    auto_trades: bool = True  # unknown payment references are payments of default amount
    default_trade_amount: int = Field(default=1_000_000, gt=0)  # fen, for those payments


class ControlRequest(Switches):
    """`POST /control`: any subset of the switches; `reset` restores defaults first."""

    reset: bool = False


class Faults:
    """The current switches; counters are used up one per affected request."""

    def __init__(self) -> None:
        self.switches = Switches()

    def update(self, request: ControlRequest) -> Switches:
        given = request.model_dump(exclude_unset=True, exclude={"reset"})
        base = Switches() if request.reset else self.switches
        self.switches = base.model_copy(update=given)
        return self.switches

    def take(self, name: str) -> bool:
        """Use up one of counter `name`; True when it was set."""
        left = getattr(self.switches, name)
        if left <= 0:
            return False
        self.switches = self.switches.model_copy(update={name: left - 1})
        return True
