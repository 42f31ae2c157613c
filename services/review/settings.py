"""Review's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.settings import KeystoreSettings, StaffSettings, refuse_placeholder

# The sandbox carrier's public development credentials (sandbox/CARRIER.md) and a public
# development salt: they prove nothing, so production refuses them.
SANDBOX_CARRIER_KEY = "sandbox-kuaidi100-key"
SANDBOX_CARRIER_CUSTOMER = "SANDBOXCUSTOMER000000000000000000"
DEV_CARRIER_SALT = "review-dev-kuaidi100-salt"
PUSH_PATH = "/v1/carriers/kuaidi100/push"  # services/review/returns/api.py
SANDBOX_CARRIER = {
    "carrier_key": SANDBOX_CARRIER_KEY,
    "carrier_customer": SANDBOX_CARRIER_CUSTOMER,
    "carrier_salt": DEV_CARRIER_SALT,
}


class ReviewSettings(StaffSettings, KeystoreSettings):
    port: int = Field(8002, ge=1, le=65535)
    policy_file: Path | None = Field(
        None, description="a policy document (YAML or JSON) to start with instead of the default"
    )
    sla_interval_ms: int = Field(
        5000, ge=10, le=600_000, description="how often due SLA reminders and breaches are checked"
    )
    carrier_url: str = Field(
        "http://127.0.0.1:8040",
        pattern=r"^https?://",
        description="Kuaidi100 base URL (https://poll.kuaidi100.com; the sandbox carrier in dev)",
    )
    # Unset in production means no carrier yet: the return lifecycle that uses it is not
    # wired (issue 16), so a deployment need not configure one to start.
    carrier_key: str | None = Field(None, repr=False, description="Kuaidi100 authorization key")
    carrier_customer: str | None = Field(
        None, description="Kuaidi100 customer id (signs real-time queries)"
    )
    carrier_salt: str | None = Field(
        None,
        min_length=1,
        repr=False,
        description="our salt: Kuaidi100 signs each push with MD5(param + salt)",
    )
    carrier_timeout_s: float = Field(5.0, gt=0, le=120, description="per-call carrier timeout")
    carrier_callback_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="where the carrier pushes tracking (our POST /v1/carriers/kuaidi100/push); "
        "unset: nothing subscribes and the poll alone tracks returns (dev and tests: this "
        "service's own address)",
    )
    carrier_poll_interval_s: float = Field(
        300.0, ge=0.05, le=86_400, description="how often returns on their way are polled"
    )

    @field_validator("policy_file")
    @classmethod
    def _readable_policy(cls, value: Path | None) -> Path | None:
        if value is not None:
            from services.review.policy_document import load_policy

            load_policy(value)  # refuse a broken policy at start-up, naming the bad field
        return value

    @model_validator(mode="before")
    @classmethod
    def _sandbox_carrier_in_dev(cls, data: Any) -> Any:
        """Dev and tests talk to the sandbox carrier with its public credentials."""
        if isinstance(data, dict) and data.get("env", "dev") != "production":
            for field, dev_value in SANDBOX_CARRIER.items():
                if data.get(field) is None:
                    data[field] = dev_value
            if data.get("carrier_callback_url") is None:
                port = data.get("port", 8002)
                data["carrier_callback_url"] = f"http://127.0.0.1:{port}{PUSH_PATH}"
        return data

    @model_validator(mode="after")
    def _real_carrier_secrets_in_production(self) -> ReviewSettings:
        public = {
            "REFUNDS_CARRIER_KEY": ("carrier_key", SANDBOX_CARRIER_KEY),
            "REFUNDS_CARRIER_CUSTOMER": ("carrier_customer", SANDBOX_CARRIER_CUSTOMER),
            "REFUNDS_CARRIER_SALT": ("carrier_salt", DEV_CARRIER_SALT),
        }
        if self.env != "production":
            return self
        if all(getattr(self, field) is None for field, _ in public.values()):
            return self  # no carrier configured
        for name, (field, dev_value) in public.items():
            value = getattr(self, field)
            refuse_placeholder(name, value, self.env)
            if value is None or value.strip() == dev_value:
                raise ValueError(f"{name} must be set to a real value in production")
        return self
