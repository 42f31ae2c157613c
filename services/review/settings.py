"""Review's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shared.settings import KeystoreSettings, StaffSettings, refuse_placeholder

# The sandbox carrier's public development credentials (sandbox/CARRIER.md) and a public
# development salt: they prove nothing, so production refuses them.
SANDBOX_CARRIER_KEY = "sandbox-kuaidi100-key"
SANDBOX_CARRIER_CUSTOMER = "SANDBOXCUSTOMER000000000000000000"
DEV_CARRIER_SALT = "review-dev-kuaidi100-salt"


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
    carrier_key: str = Field(
        SANDBOX_CARRIER_KEY, repr=False, description="Kuaidi100 authorization key"
    )
    carrier_customer: str = Field(
        SANDBOX_CARRIER_CUSTOMER, description="Kuaidi100 customer id (signs real-time queries)"
    )
    carrier_salt: str = Field(
        DEV_CARRIER_SALT,
        min_length=1,
        repr=False,
        description="our salt: Kuaidi100 signs each push with MD5(param + salt)",
    )
    carrier_timeout_s: float = Field(5.0, gt=0, le=120, description="per-call carrier timeout")

    @field_validator("policy_file")
    @classmethod
    def _readable_policy(cls, value: Path | None) -> Path | None:
        if value is not None:
            from services.review.policy_document import load_policy

            load_policy(value)  # refuse a broken policy at start-up, naming the bad field
        return value

    @model_validator(mode="after")
    def _real_carrier_secrets_in_production(self) -> ReviewSettings:
        public = {
            "REFUNDS_CARRIER_KEY": (self.carrier_key, SANDBOX_CARRIER_KEY),
            "REFUNDS_CARRIER_CUSTOMER": (self.carrier_customer, SANDBOX_CARRIER_CUSTOMER),
            "REFUNDS_CARRIER_SALT": (self.carrier_salt, DEV_CARRIER_SALT),
        }
        for name, (value, dev_value) in public.items():
            refuse_placeholder(name, value or None, self.env)
            if self.env == "production" and value.strip() == dev_value:
                raise ValueError(f"{name} must not be the public development value in production")
        return self
