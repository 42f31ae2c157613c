"""Intake's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import PlatformSettings, StaffSettings


class IntakeSettings(PlatformSettings, StaffSettings):
    port: int = Field(8001, ge=1, le=65535)
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=16 * 1024 * 1024, description="larger request bodies get 413"
    )
    idempotency_ttl_hours: int = Field(
        24, ge=24, le=24 * 90, description="how long an Idempotency-Key is remembered"
    )
