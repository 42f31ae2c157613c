"""Payout's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class PayoutSettings(ServiceSettings):
    port: int = Field(8003, ge=1, le=65535)
    gateway_url: str = Field(
        "http://127.0.0.1:8010", pattern=r"^https?://", description="payment gateway base URL"
    )
    gateway_timeout_s: float = Field(5.0, gt=0, le=120, description="per-call gateway timeout")
    payout_max_attempts: int = Field(5, ge=1, le=100, description="gateway attempts per payout")
    executor_enabled: bool = Field(True, description="run the payout executor in this process")
