"""The returns (退货退款) a frozen store holds, driven over HTTP after the mix's other refunds.

Used by `scripts/freeze_stores.py` (from release 0.3.0). An admin publishes the example
returns policy; then platforms post the shipments, the sandbox carrier delivers and pushes its
tracking, and the warehouse records what came back, as in tests/e2e/test_returns.py. The
deadlines are calendar days (at least one), so no missed deadline can be driven here without
waiting days: scripts/frozen_samples.py writes those types' samples from the model instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frozen_mix import ANN, DEV, ROOT, Mix, line, order, refund_body, staff, until

from services.review.policy_document import load_policy

RETURN_POLICY = (
    Path(__file__).resolve().parents[1] / "services" / "review" / "example_return_policy.yaml"
)
CARRIER = "shunfeng"
WU = staff("wu", "warehouse")  # the warehouse's inspector


class Returns:
    """Each kind of return, one after the other, each waited for."""

    def __init__(self, mix: Mix) -> None:
        self.mix = mix
        self.policy_version = ""

    def run(self) -> None:
        self.publish_policy()
        for step in (
            self.returned_and_paid,
            self.paid_less_a_restocking_fee,
            self.wrong_item_decided_by_a_reviewer,
            self.exchanged,
            self.left_awaiting_return,
        ):
            step()

    def publish_policy(self) -> None:
        """From now on the policy in force wants the goods back for most reasons."""
        policy = load_policy(RETURN_POLICY).model_dump(mode="json", by_alias=True)
        self.mix.post("review", "/v1/policies", policy, ROOT, 201)
        self.policy_version = str(policy["version"])

    # -- a return's steps ------------------------------------------------------------------------

    def requested(
        self, kind: str, amount: int, *, category: str = "apparel", outcome: str = "full_refund"
    ) -> tuple[str, dict[str, Any]]:
        """A no-reason refund (or exchange) of a one-line order."""
        mix = self.mix
        customer = f"C-{mix.tag}-{kind}"
        item = line("ITEM", amount, f"{category} item") | {"category": category}
        the_order = order(f"ORD-{mix.tag}-{kind}", customer, [item])
        request = refund_body(the_order, ["ITEM"], reason="changed_mind")
        request["desired_outcome"] = outcome
        return mix.request(kind, request), request

    def shipped_and_delivered(self, refund_id: str) -> None:
        """The platform posts the parcel; review subscribes it at the carrier, which delivers
        it to the return address and pushes the tracking."""
        mix, carrier = self.mix, self.mix.http["carrier"]
        made = carrier.post("/sandbox/shipments", json={"company": CARRIER})
        made.raise_for_status()
        number = str(made.json()["number"])
        shipment = {"carrier": CARRIER, "tracking_number": number}
        mix.post("intake", f"/v1/refunds/{refund_id}/return-shipment", shipment, DEV)
        mix.wait(refund_id, "return_in_transit")
        parcel = f"/sandbox/shipments/{CARRIER}/{number}"
        until(lambda: carrier.get(parcel).json()["subscribed"], f"review to subscribe {number}")
        carrier.post(f"{parcel}/advance", json={"to": "delivered"}).raise_for_status()
        mix.wait(refund_id, "return_delivered")

    def received(self, refund_id: str, condition: str = "as_expected") -> None:
        """The warehouse records every item asked for, in `condition`."""
        asked = self.mix.get("intake", f"/v1/refunds/{refund_id}", DEV)["return"]["items"]
        receipt = {
            "items": [
                {
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "condition": condition,
                    "photos": [f"https://cdn.example.com/wh/{refund_id}.jpg"],
                }
                for item in asked
            ],
            "note": f"Frozen store: {condition}",
        }
        self.mix.post("review", f"/v1/returns/{refund_id}/receipt", receipt, WU)

    # -- the kinds -------------------------------------------------------------------------------

    def returned_and_paid(self) -> None:
        refund_id, _ = self.requested("returned", 11900)
        self.mix.wait(refund_id, "awaiting_return")
        self.shipped_and_delivered(refund_id)
        self.received(refund_id)
        self.mix.wait(refund_id, "paid")

    def paid_less_a_restocking_fee(self) -> None:
        """Electronics returned without a reason: 10 % restocking fee (¥39.90 of ¥399.00)."""
        refund_id, _ = self.requested("returned_restocking_fee", 39900, category="electronics")
        self.mix.wait(refund_id, "awaiting_return")
        self.shipped_and_delivered(refund_id)
        self.received(refund_id)
        self.mix.wait(refund_id, "paid")

    def wrong_item_decided_by_a_reviewer(self) -> None:
        """Not the item ordered came back: the case reopens and a reviewer pays half."""
        refund_id, _ = self.requested("returned_wrong_item", 19900)
        self.mix.wait(refund_id, "awaiting_return")
        self.shipped_and_delivered(refund_id)
        self.received(refund_id, "wrong_item")
        self.mix.wait(refund_id, "in_review")
        until(lambda: self.mix.case(refund_id)["state"] == "pending", "the case to reopen")
        approval = {"amount": {"amount": 9950, "currency": "CNY"}, "note": "a similar tee came"}
        self.mix.post("review", f"/v1/cases/{refund_id}/approve", approval, ANN)
        self.mix.wait(refund_id, "paid")

    def exchanged(self) -> None:
        """An exchange goes to a person, who approves it with the price difference of the
        cheaper replacement; once the goods are back as expected the replacement is ready
        and the difference paid. (The staff API takes only positive amounts, so an exchange
        at the same price cannot be approved over HTTP.)"""
        refund_id, _ = self.requested("exchanged", 19900, outcome="exchange")
        self.mix.wait(refund_id, "in_review")
        approval = {"amount": {"amount": 2000, "currency": "CNY"}, "note": "the M is ¥20 less"}
        self.mix.post("review", f"/v1/cases/{refund_id}/approve", approval, ANN)
        self.mix.wait(refund_id, "awaiting_return")
        self.shipped_and_delivered(refund_id)
        self.received(refund_id)
        self.mix.wait(refund_id, "exchange_ready", "paid")
        until(lambda: self._difference_paid(refund_id), "the exchange's difference to be paid")

    def _difference_paid(self, refund_id: str) -> bool:
        view = self.mix.get("intake", f"/v1/refunds/{refund_id}", DEV)
        return bool((view.get("payout") or {}).get("status") == "paid")

    def left_awaiting_return(self) -> None:
        """In flight: the goods are asked for and not shipped yet. Its ship-by date is in
        the MANIFEST: a later test after that date finds it closed by review's clock."""
        refund_id, _ = self.requested("awaiting_return", 11900)
        self.mix.wait(refund_id, "awaiting_return")
        shown = self.mix.get("intake", f"/v1/refunds/{refund_id}", DEV)["return"]
        self.mix.refunds[refund_id]["ship_by"] = shown["ship_by"]
        self.mix.refunds[refund_id]["rma"] = shown["rma"]
        self.mix.in_flight.append(refund_id)
