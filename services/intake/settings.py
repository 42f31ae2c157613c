"""Intake's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from shared.auth import DEV_API_KEY, DEV_TENANT, parse_api_keys
from shared.settings import ServiceSettings, refuse_placeholder


class IntakeSettings(ServiceSettings):
    port: int = Field(8001, ge=1, le=65535)
    api_keys: str = Field(
        "",
        description="platform API keys as tenant:key,tenant:key (dev: a local key is added)",
    )

    @field_validator("api_keys")
    @classmethod
    def _parseable(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @model_validator(mode="after")
    def _real_keys_in_production(self) -> IntakeSettings:
        if self.env == "production":
            refuse_placeholder("REFUNDS_API_KEYS", self.api_keys or None, self.env)
            for pair in self.api_keys.split(","):
                key = pair.partition(":")[2].strip()
                if len(key) < 24 or key == DEV_API_KEY:
                    raise ValueError("REFUNDS_API_KEYS: production keys need 24+ characters")
        return self

    def hashed_api_keys(self) -> dict[str, str]:
        keys = parse_api_keys(self.api_keys)
        if self.env != "production" and not keys:
            keys = parse_api_keys(f"{DEV_TENANT}:{DEV_API_KEY}")
        return keys
