"""Review's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from shared.settings import KeystoreSettings, StaffSettings


class ReviewSettings(StaffSettings, KeystoreSettings):
    port: int = Field(8002, ge=1, le=65535)
    policy_file: Path | None = Field(
        None, description="a policy document (YAML or JSON) to start with instead of the default"
    )
    sla_interval_ms: int = Field(
        5000, ge=10, le=600_000, description="how often due SLA reminders and breaches are checked"
    )

    @field_validator("policy_file")
    @classmethod
    def _readable_policy(cls, value: Path | None) -> Path | None:
        if value is not None:
            from services.review.policy_document import load_policy

            load_policy(value)  # refuse a broken policy at start-up, naming the bad field
        return value
