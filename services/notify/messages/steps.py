"""The vocabulary of customer messages: the steps a customer is told about, the channels they
are told on, and how one message (refund, step occurrence, channel) is named everywhere."""

from __future__ import annotations

from typing import Literal

from shared.ids import derived_id, public_id
from shared.vocabulary import CUSTOMER_CHANNELS, CustomerChannel

# The steps notify tells a customer about, in the order a refund can go through them.
STEPS = (
    "received",
    "in_review",
    "evidence_requested",
    "approved",
    "rejected",
    "compensation_offered",
    "withdrawn",
    "paid",
    "payout_failed",
    # A return (退货退款): the goods come back before the money does.
    "return_requested",
    "return_ship_by_approaching",
    "return_delivered",
    "return_received",
    "return_deadline_missed",
    "exchange_ready",
)
# Steps a refund can go through more than once: review asks for evidence again, an appeal
# reopens a rejected case (so it is in review again, and may be rejected again), a payout
# retried by finance fails again. Each new occurrence is a message of its own.
REPEATABLE = frozenset({"in_review", "evidence_requested", "rejected", "payout_failed"})
# in_app is delivered by storing it (the customer's feed reads it); e-mail and SMS leave
# the system and are sent by a worker, attempt by attempt.
ChannelName = CustomerChannel
CHANNELS = CUSTOMER_CHANNELS
EMAIL, SMS, IN_APP = CHANNELS
# What became of a message: pending (due, or being retried) → sent | failed | uncertain (an
# attempt was cut off); only an uncertain or failed one is sent again, by a person.
Status = Literal["pending", "sent", "failed", "uncertain"]
RESENDABLE = ("uncertain", "failed")
MESSAGE_ID_DOMAIN = "refunds.local"
# Why a message was never sent: the customer was erased, their address no longer opens.
CUSTOMER_ERASED = "customer_erased"


def occurrence_key(step: str, occurrence: int) -> str:
    """How a step's occurrence is named wherever a message is keyed: `rejected` for the first,
    `rejected#2` for the second. The first keeps the plain step, so its ids never change."""
    return step if occurrence == 1 else f"{step}#{occurrence}"


def step_of(key: str) -> str:
    """`rejected#2` → `rejected`: the step whose templates a message is rendered with."""
    return key.partition("#")[0]


def occurrence_of(key: str) -> int:
    """`rejected#2` → 2; a plain step is its first occurrence."""
    number = key.partition("#")[2]
    return int(number) if number else 1


def notification_id(refund_id: str, step: str, channel: str) -> str:
    """`nt_<hex>`: the same (refund, step, channel) always names the same notification
    (`step` is an occurrence key: a second rejection is a notification of its own)."""
    return public_id("nt", derived_id("notification", refund_id, step, channel))


def message_id(refund_id: str, step: str, channel: str) -> str:
    """The RFC 5322 Message-ID of the one e-mail for (refund, step, channel)."""
    return f"<{notification_id(refund_id, step, channel)}@{MESSAGE_ID_DOMAIN}>"


def mask_email(address: str) -> str:
    """`li.wei@example.com` → `l***@example.com`: enough to recognise, not to contact."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"
