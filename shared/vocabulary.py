"""Words more than one service uses, each defined once, as plain Literals.

Standard library only, so that pure rule modules (review's assessment) may import them
as well as the integration-event contracts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

# A tenant (a platform) as named in keys, URLs and events.
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")

Tier = Literal["general", "important", "major"]  # a case's review tier, least senior first
TIERS: tuple[Tier, ...] = get_args(Tier)  # lowest first: an escalation goes one step up

# Where a customer is told: e-mail and SMS leave the system, in_app is the platform's feed.
CustomerChannel = Literal["email", "sms", "in_app"]
CUSTOMER_CHANNELS: tuple[CustomerChannel, ...] = get_args(CustomerChannel)

# What a warehouse finds when it inspects a returned item.
InspectionCondition = Literal["as_expected", "damaged_by_customer", "wrong_item", "missing_parts"]
INSPECTION_CONDITIONS: tuple[InspectionCondition, ...] = get_args(InspectionCondition)

# --- Return shipments: carrier codes and tracking-number formats ------------------------
# Kuaidi100's (快递100) company codes, always lower case. The formats are OUR input rules (a
# platform's return shipment is validated against them), modelled on each carrier's common
# formats and no carrier's guarantee. They match the table of sandbox/carrier/protocol.py on
# purpose, but that table is a separate copy: an emulator of the outside world is an
# independent implementation, so neither imports the other.

CarrierCode = Literal["shunfeng", "yuantong", "zhongtong", "yunda", "jd", "ems"]
CARRIER_CODES: tuple[CarrierCode, ...] = get_args(CarrierCode)
TRACKING_NUMBER_MIN, TRACKING_NUMBER_MAX = 6, 32  # Kuaidi100 takes 6 to 32 characters


@dataclass(frozen=True)
class TrackingFormat:
    """A carrier's display name and the tracking numbers we accept for it (upper case)."""

    name: str
    pattern: re.Pattern[str]
    described: str  # the pattern in words, for the message a refused number gets

    def accepts(self, number: str) -> bool:
        return bool(self.pattern.fullmatch(normalize_tracking_number(number)))


TRACKING_FORMATS: dict[CarrierCode, TrackingFormat] = {
    "shunfeng": TrackingFormat("顺丰速运", re.compile(r"SF\d{12,13}"), "SF + 12-13 digits"),
    "yuantong": TrackingFormat("圆通速递", re.compile(r"YT\d{13}"), "YT + 13 digits"),
    "zhongtong": TrackingFormat("中通快递", re.compile(r"\d{12,14}"), "12-14 digits"),
    "yunda": TrackingFormat("韵达快递", re.compile(r"\d{13,15}"), "13-15 digits"),
    "jd": TrackingFormat("京东物流", re.compile(r"JD[0-9A-Z]{13,15}"), "JD + 13-15 letters/digits"),
    "ems": TrackingFormat(
        "EMS",
        re.compile(r"[A-Z]{2}\d{9}[A-Z]{2}|\d{13}"),
        "2 letters + 9 digits + 2 letters, or 13 digits",
    ),
}


def normalize_tracking_number(number: str) -> str:
    """Numbers are matched without regard to case and kept upper case, as carriers print them."""
    return number.strip().upper()


def tracking_number_problem(code: str, number: str) -> str | None:
    """What is wrong with `number` as a tracking number of carrier `code`; None when nothing."""
    carrier = TRACKING_FORMATS.get(code)  # type: ignore[call-overload]
    if carrier is None:
        return f"unknown carrier code {code!r}; expected one of {', '.join(CARRIER_CODES)}"
    normalized = normalize_tracking_number(number)
    if not TRACKING_NUMBER_MIN <= len(normalized) <= TRACKING_NUMBER_MAX:
        return (
            f"a tracking number has {TRACKING_NUMBER_MIN}-{TRACKING_NUMBER_MAX} characters, "
            f"got {len(normalized)}"
        )
    if not carrier.accepts(normalized):
        return f"{normalized} is not a {code} ({carrier.name}) number: expected {carrier.described}"
    return None
