"""What the carrier push route needs: the carrier adapter that verifies a push's signature,
and a Prometheus counter of pushes by outcome (a forged one is counted and logged, never
stored)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from services.review.returns.carriers import Carrier

PushOutcome = Literal["recorded", "nothing_new", "forged", "malformed", "unknown_shipment"]


class CarrierPushes:
    """`carrier` None: no carrier configured, so every push is refused."""

    def __init__(self, carrier: Carrier | None, registry: CollectorRegistry | None = None) -> None:
        self.carrier = carrier
        self.counter = Counter(
            "refunds_carrier_pushes",
            "Carrier tracking pushes received, by outcome (forged: a sign that is not ours).",
            ["carrier", "outcome"],
            registry=registry,
        )

    def count(self, outcome: PushOutcome, carrier: str = "kuaidi100") -> None:
        self.counter.labels(carrier, outcome).inc()

    def seen(self, outcome: PushOutcome, carrier: str = "kuaidi100") -> float:
        """How many pushes had `outcome` (for tests and diagnostics)."""
        return float(self.counter.labels(carrier, outcome)._value.get())
