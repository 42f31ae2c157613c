"""Words more than one service uses, each defined once, as plain Literals.

Standard library only, so that pure rule modules (review's assessment) may import them
as well as the integration-event contracts.
"""

from __future__ import annotations

from typing import Literal, get_args

Tier = Literal["general", "important", "major"]  # a case's review tier, least senior first
TIERS: tuple[Tier, ...] = get_args(Tier)  # lowest first: an escalation goes one step up

# Where a customer is told: e-mail and SMS leave the system, in_app is the platform's feed.
CustomerChannel = Literal["email", "sms", "in_app"]
CUSTOMER_CHANNELS: tuple[CustomerChannel, ...] = get_args(CustomerChannel)
