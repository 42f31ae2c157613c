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

    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=16 * 1024 * 1024, description="larger request bodies get 413"
    )
    idempotency_ttl_hours: int = Field(
        24, ge=24, le=24 * 90, description="how long an Idempotency-Key is remembered"
    )

    @field_validator("api_keys")
    @classmethod
    def _parseable(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @model_validator(mode="after")
    def _real_keys_in_production(self) -> IntakeSettings:
        # In production the keys may all be stored ones (`refunds api-keys create`),
        # but any given here must be real.
        if self.env == "production" and self.api_keys.strip():
            refuse_placeholder("REFUNDS_API_KEYS", self.api_keys, self.env)
            for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
                key = pair.partition(":")[2].strip()
                if len(key) < 24 or key == DEV_API_KEY:
                    raise ValueError("REFUNDS_API_KEYS: production keys need 24+ characters")
        return self

    def hashed_api_keys(self) -> dict[str, str]:
        keys = parse_api_keys(self.api_keys)
        if self.env != "production" and not keys:
            keys = parse_api_keys(f"{DEV_TENANT}:{DEV_API_KEY}")
        return keys
