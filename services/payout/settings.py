"""Payout's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import KeystoreSettings, StaffSettings, refuse_placeholder

SANDBOX_CALLBACK_SECRET = "sandbox-dev-callback-secret"  # noqa: S105 - public by design
CALLBACK_PATH = "/v1/gateway/callbacks"


class PayoutSettings(StaffSettings, KeystoreSettings):
    port: int = Field(8003, ge=1, le=65535)
    gateway_url: str = Field(
        "http://127.0.0.1:8010", pattern=r"^https?://", description="payment gateway base URL"
    )
    gateway_timeout_s: float = Field(5.0, gt=0, le=120, description="per-call gateway timeout")
    provider_timeout_s: float = Field(
        10.0, gt=0, le=120, description="per-call timeout at a tenant's Stripe/Alipay/WeChat Pay"
    )
    gateway_callback_secret: str = Field(
        SANDBOX_CALLBACK_SECRET,
        description="HMAC key of gateway callbacks (the sandbox's public dev key by default; "
        "a real secret in production)",
    )
    callback_tolerance_s: int = Field(
        300, ge=1, le=3600, description="callbacks signed further from now are refused"
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="this service's public base URL, for the gateway's notify_url "
        "(default http://127.0.0.1:<port>)",
    )
    payout_max_attempts: int = Field(5, ge=1, le=100, description="gateway attempts per series")
    payout_retry_window_s: float = Field(
        900.0, gt=0, le=7 * 86400, description="total time an attempt series may take"
    )
    payout_retry_base_s: float = Field(0.2, gt=0, le=600, description="first retry delay")
    payout_retry_max_s: float = Field(60.0, gt=0, le=3600, description="longest retry delay")
    payout_poll_after_s: float = Field(
        30.0, ge=0, le=86400, description="query a `processing` refund after this long"
    )
    payout_poll_interval_s: float = Field(
        5.0, gt=0, le=3600, description="how often the poller looks for `processing` refunds"
    )
    executor_enabled: bool = Field(True, description="run the payout executor in this process")

    @model_validator(mode="after")
    def _real_secret_in_production(self) -> PayoutSettings:
        secret = self.gateway_callback_secret
        refuse_placeholder("REFUNDS_GATEWAY_CALLBACK_SECRET", secret or None, self.env)
        if self.env == "production" and secret == SANDBOX_CALLBACK_SECRET:
            raise ValueError("REFUNDS_GATEWAY_CALLBACK_SECRET must not be the sandbox's dev key")
        return self

    @property
    def base_url(self) -> str:
        """Where providers reach this service (their callbacks)."""
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def notify_url(self) -> str:
        return self.base_url + CALLBACK_PATH
