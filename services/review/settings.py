"""Review's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from shared.settings import ServiceSettings


class ReviewSettings(ServiceSettings):
    port: int = Field(8002, ge=1, le=65535)
    auto_approve_limit: Decimal = Field(
        Decimal("500.00"),
        gt=0,
        max_digits=18,
        description="approve automatically up to this amount, in major units of the order currency",
    )
