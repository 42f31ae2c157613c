"""Review's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from refunds.jwt import DEV_JWT_SECRET
from shared.settings import ServiceSettings, refuse_placeholder


class ReviewSettings(ServiceSettings):
    port: int = Field(8002, ge=1, le=65535)
    policy_file: Path | None = Field(
        None, description="a policy document (YAML or JSON) to start with instead of the default"
    )
    sla_interval_ms: int = Field(
        5000, ge=10, le=600_000, description="how often due SLA reminders and breaches are checked"
    )

    jwt_secret: str = Field(
        "",
        repr=False,
        description="HS256 secret of staff tokens; outside production, the public dev secret",
    )

    @model_validator(mode="after")
    def _real_staff_secret_in_production(self) -> ReviewSettings:
        if self.env == "production":
            refuse_placeholder("REFUNDS_JWT_SECRET", self.jwt_secret or None, self.env)
            if len(self.jwt_secret) < 32 or self.jwt_secret == DEV_JWT_SECRET:
                raise ValueError(
                    "REFUNDS_JWT_SECRET: production needs 32+ characters, not the dev secret"
                )
        return self

    def staff_secret(self) -> str:
        return self.jwt_secret or DEV_JWT_SECRET

    @field_validator("policy_file")
    @classmethod
    def _readable_policy(cls, value: Path | None) -> Path | None:
        if value is not None:
            from services.review.policy import load_policy

            load_policy(value)  # refuse a broken policy at start-up, naming the bad field
        return value
