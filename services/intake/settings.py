"""Intake's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import KeystoreSettings, PlatformSettings, StaffSettings


class IntakeSettings(PlatformSettings, StaffSettings, KeystoreSettings):
    port: int = Field(8001, ge=1, le=65535)
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=16 * 1024 * 1024, description="larger request bodies get 413"
    )
    idempotency_ttl_hours: int = Field(
        24, ge=24, le=24 * 90, description="how long an Idempotency-Key is remembered"
    )
    review_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="review's base URL, for the cross-service timeline (/v1/refunds/{id}/events)",
    )
    payout_url: str | None = Field(
        None, pattern=r"^https?://", description="payout's base URL, for the timeline"
    )
    notify_url: str | None = Field(
        None, pattern=r"^https?://", description="notify's base URL, for the timeline"
    )

    def peers(self) -> dict[str, str]:
        """The services whose ledgers the timeline asks (unset ones show as incomplete)."""
        named = {"review": self.review_url, "payout": self.payout_url, "notify": self.notify_url}
        return {service: url or "" for service, url in named.items()}
