"""Returns (退货退款) in the drills' mix: the policy that asks for the goods back, the bodies of
the return kinds, and the steps the platform, the carrier and the warehouse take for them.

The platform posts a shipment minted at the sandbox carrier; once review has subscribed the
number there, the carrier is moved on to `delivered` (its push, or review's poll when a push
is dropped, tells review); once the refund shows `return_delivered`, the warehouse records
the receipt. Each action is sent through the workload's tolerant helpers with its own
Idempotency-Key per refund, so a lost answer is simply sent again.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from services.review.policy_document import load_policy
from shared.auth import DEV_API_KEY
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.support.factories import order, refund_body

if TYPE_CHECKING:
    from tests.drills.workload import Refund, Workload

PLATFORM = {"Authorization": f"Bearer {DEV_API_KEY}"}
WAREHOUSE = {
    "Authorization": f"Bearer {encode(staff_claims('wu', ['warehouse'], 3600), DEV_JWT_SECRET)}"
}
RETURN_KINDS = frozenset({"return", "return_deduct"})
RETURN_POLICY = Path(__file__).parents[2] / "services" / "review" / "example_return_policy.yaml"
# The example policy less the rule that wants damaged goods back: the drills' older kinds
# (damaged, with a photo) keep paying without a return, and only changed_mind needs one.
DROPPED_RULE = "return.seller_fault"
DRILL_POLICY_VERSION = "2027-01-01-returns-drill"
CARRIER = "shunfeng"
# What each return kind sends back. Electronics returned without a reason pay the example
# policy's restocking fee (deduction.restocking_electronics: 10 %, at most 200.00 per item).
RETURNED_ITEM = {
    "return": {"sku": "TSHIRT-L-WHITE", "name": "T-shirt, L, white", "category": "apparel"},
    "return_deduct": {"sku": "EARBUDS-BT-2", "name": "Earbuds", "category": "electronics"},
}


def drill_policy() -> dict[str, Any]:
    """The example returns policy as review's POST /v1/policies takes it, without the
    seller-fault return rule (and its explanation), under a version of its own."""
    policy = load_policy(RETURN_POLICY).model_dump(mode="json", by_alias=True)
    rules = policy["returns"]["rules"]
    policy["returns"]["rules"] = [rule for rule in rules if rule["id"] != DROPPED_RULE]
    assert len(policy["returns"]["rules"]) == len(rules) - 1, f"{DROPPED_RULE} not in the policy"
    del policy["explanations"][DROPPED_RULE]
    policy["version"] = DRILL_POLICY_VERSION
    return policy


def publish_drill_policy(review_url: str, admin: dict[str, str]) -> None:
    """Turn returns on for the drills: once, before any refund is offered."""
    answer = httpx.post(
        f"{review_url}/v1/policies",
        json=drill_policy(),
        headers={**admin, "Idempotency-Key": f"drill-policy-{DRILL_POLICY_VERSION}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def return_body(kind: str, amount: int) -> dict[str, Any]:
    """A no-reason return inside the 7-day window, by a customer with no history."""
    customer = f"C-drill-{uuid.uuid4().hex[:10]}"
    item = RETURNED_ITEM[kind]
    body = refund_body(amount, reason="changed_mind")
    body["order"] = order(amount, delivered_days_ago=2, customer_id=customer)
    body["order"]["items"][0].update(item)
    body["items"] = [{"sku": item["sku"], "quantity": 1}]
    body["description"] = "Changed my mind; unopened"
    return body


def take_return_step(workload: Workload, refund: Refund) -> None:
    """The next step of a return that is the platform's, the carrier's or the warehouse's."""
    if refund.status == "awaiting_return" and not refund.shipped:
        _ship(workload, refund)
    elif refund.status == "return_in_transit" and not refund.delivered:
        _deliver(workload, refund)
    elif refund.status == "return_delivered" and not refund.received:
        _receive(workload, refund)


def _ship(workload: Workload, refund: Refund) -> None:
    """Mint a number at the carrier (once per refund), then post it to intake."""
    carrier = workload.urls.carrier
    if refund.tracking_number is None:
        minted = workload._send(
            "POST", f"{carrier}/sandbox/shipments", {}, json={"company": CARRIER}
        )
        if minted is None:
            return
        assert minted.status_code == 201, minted.text
        refund.tracking_number = str(minted.json()["number"])
    shipment = {"carrier": CARRIER, "tracking_number": refund.tracking_number}
    url = f"{workload.urls.intake}/v1/refunds/{refund.id}/return-shipment"
    answer = workload._post(url, shipment, PLATFORM, f"drill-ship-{refund.id}")
    if answer is not None:
        assert answer.status_code in (200, 201), answer.text
        refund.shipped = True


def _deliver(workload: Workload, refund: Refund) -> None:
    """Once review has subscribed the number at the carrier, the parcel arrives."""
    shipment_url = f"{workload.urls.carrier}/sandbox/shipments/{CARRIER}/{refund.tracking_number}"
    shown = workload._send("GET", shipment_url, {})
    if shown is None:
        return
    assert shown.status_code == 200, shown.text
    if not shown.json()["subscribed"]:
        return  # review has not subscribed it yet: the push would go nowhere
    moved = workload._send("POST", f"{shipment_url}/advance", {}, json={"to": "delivered"})
    if moved is not None:
        assert moved.status_code in (200, 409), moved.text  # 409: delivered already
        refund.delivered = True


def _receive(workload: Workload, refund: Refund) -> None:
    """The warehouse finds the item as expected. A 409 (already received, say, when the
    answer was lost) is left to the refund's status, which moves on."""
    line = {"sku": RETURNED_ITEM[refund.kind]["sku"], "quantity": 1, "condition": "as_expected"}
    url = f"{workload.urls.review}/v1/returns/{refund.id}/receipt"
    answer = workload._post(url, {"items": [line]}, WAREHOUSE, f"drill-receipt-{refund.id}")
    if answer is not None:
        assert answer.status_code in (200, 201, 409), answer.text
        refund.received = answer.status_code in (200, 201)


def carrier_pushes(carrier_url: str) -> dict[str, int]:
    """How the carrier's pushes went, by delivery (delivered, dropped, failed...)."""
    pushes = httpx.get(f"{carrier_url}/sandbox/pushes", timeout=30).json()["pushes"]
    found: dict[str, int] = {}
    for push in pushes:
        found[push["delivery"]] = found.get(push["delivery"], 0) + 1
    return found
