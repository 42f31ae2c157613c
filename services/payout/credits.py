"""Store credit and coupons: what a refund gives besides money on the payment route, once each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from shared.ids import derived_id, public_id
from shared.money import Money
from shared.quick_copy import QuickCopy


@dataclass
class StoreCredit(QuickCopy, Aggregate, created_event_name="Credited"):
    """A credit to the customer's store balance: the money of a `store_balance` payout.

    Keyed by the merchant refund number, so recording it twice is impossible.
    """

    merchant_refund_no: str
    refund_id: str
    tenant: str
    amount: Money
    at: datetime

    @staticmethod
    def create_id(merchant_refund_no: str) -> uuid.UUID:
        return derived_id("store-credit", merchant_refund_no)

    @property
    def reference(self) -> str:
        return public_id("sb", self.id)


@dataclass
class Coupon(QuickCopy, Aggregate, created_event_name="Issued"):
    """A compensation coupon, issued once per review event that grants it."""

    source_event_id: str
    refund_id: str
    tenant: str
    order_id: str
    value: Money
    reason: str
    granted_by: str
    at: datetime

    @staticmethod
    def create_id(source_event_id: str) -> uuid.UUID:
        return derived_id("coupon", source_event_id)

    @property
    def code(self) -> str:
        return public_id("cp", self.id)


# Both were defined in services/payout/domain.py at first: events stored then name that module.
for _moved in (StoreCredit, Coupon):
    register_topic(f"services.payout.domain:{_moved.__name__}", _moved)
