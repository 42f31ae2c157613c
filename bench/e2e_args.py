"""The end-to-end benchmark's argument types: lists of rates and delays, history sizes, and
service settings for the stack."""

from __future__ import annotations

import argparse
from functools import cache

from services.console.settings import ConsoleSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.payout.settings import PayoutSettings
from services.review.settings import ReviewSettings
from shared.settings import ServiceSettings

# The services' variables' prefix, as their settings read them (REFUNDS_).
ENV_PREFIX = str(ServiceSettings.model_config.get("env_prefix", ""))


def numbers(text: str) -> list[float]:
    """`10,20,40` → non-negative numbers (rates, gateway delays), as given."""
    try:
        found = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 10,20,40, got {text!r}") from None
    if not found or min(found) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return found


def sizes(text: str) -> list[int]:
    """`1000,100000` (or `1k,100k`) → ascending refund counts: a store only grows."""
    try:
        found = [
            int(float(part.strip().lower().removesuffix("k")) * (1000 if "k" in part else 1))
            for part in text.split(",")
            if part.strip()
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1000,100000, got {text!r}") from None
    if not found or min(found) < 0:
        raise argparse.ArgumentTypeError(f"expected refund counts, got {text!r}")
    return sorted(set(found))


def setting(text: str) -> tuple[str, str]:
    """`poll_interval_ms=50` (or `REFUNDS_POLL_INTERVAL_MS=50`) → (`REFUNDS_POLL_INTERVAL_MS`,
    `50`): a service setting (`--set`). A name no service has is refused: the services would
    ignore it, and the run would measure the defaults under the name of a change."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    variable = ENV_PREFIX + name.strip().upper().removeprefix(ENV_PREFIX)
    if variable not in service_variables():
        raise argparse.ArgumentTypeError(
            f"{variable} is no setting of intake, review, payout, notify or the console"
        )
    return variable, value.strip()


@cache
def service_variables() -> frozenset[str]:
    """The environment variables the services' settings read."""
    kinds = (IntakeSettings, ReviewSettings, PayoutSettings, NotifySettings, ConsoleSettings)
    return frozenset(ENV_PREFIX + name.upper() for kind in kinds for name in kind.model_fields)
