"""Which return a (carrier, tracking number) belongs to: a carrier's push names only the
shipment."""

from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy


class ShipmentIndex(QuickCopy, Aggregate):
    """Which return a (carrier, tracking number) belongs to: a push names only the shipment.
    Written in the same transaction as the return's `Shipped`, with an id derived from it."""

    @staticmethod
    def create_id(carrier: str, tracking_number: str) -> uuid.UUID:
        return derived_id("return-shipment", carrier, tracking_number)

    @event("Indexed")
    def __init__(self, *, carrier: str, tracking_number: str, refund_id: str) -> None:
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.refund_id = refund_id
