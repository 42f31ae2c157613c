"""The integration events of a return (退货退款): goods back before money back.

Review owns the return's lifecycle and publishes its steps on refunds.review.v1; the
one step the platform takes, posting the shipment, intake publishes on refunds.intake.v1
(`ReturnShippedV1`). The order of a return's events:

    refund.return_requested.v1   review approved, but the goods must come back first
    return.ship_by_approaching.v1  the ship-by date is near and nothing was shipped
    return.shipped.v1            the platform posted the carrier and tracking number (intake)
    return.delivered.v1          the carrier says the goods reached the return address
    return.received.v1           the warehouse recorded what came back, item by item
    return.deadline_missed.v1    nothing shipped in time (closed), or no receipt recorded in
                                 time (accepted as expected, paid)
    refund.exchange_ready.v1     an exchange's goods came back as expected: ship the replacement

Money moves only on `review.approved.v1`, published after the receipt with the amount the
inspection leaves (or by a reviewer, when the inspection contradicted the claim).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import DesiredOutcome, IntegrationEvent, MoneyModel
from shared.vocabulary import CarrierCode, InspectionCondition

RMA_DOC = "the return's number (退货单号), the same on every event of one return"


class ReturnAddressModel(BaseModel):
    """Where the goods go back to: a merchant's or warehouse's address (not personal data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(examples=["退货仓 收货组"])
    phone: str = Field(examples=["+86 21 5555 0100"])
    lines: list[str] = Field(examples=[["上海市浦东新区 申江路 100 号", "3 号库 退货组"]])
    postcode: str = Field(examples=["201203"])


class ReturnLine(BaseModel):
    """An item the customer sends back: how many, and what the refund pays for them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    quantity: int = Field(ge=1)
    price: MoneyModel = Field(description="what the refund pays for this quantity, undeducted")


class InspectedLine(BaseModel):
    """One item as the warehouse found it, and what that means for its refund."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    expected: int = Field(ge=0, description="quantity the customer was asked to send back")
    received: int = Field(ge=0, description="quantity that arrived; units not back are not paid")
    condition: InspectionCondition | None = Field(description="None: nothing of it arrived")
    heavy_damage: bool = False
    photos: list[str] = Field(default_factory=list, description="links to the inspector's photos")
    deducted: MoneyModel = Field(description="taken off this item's refund by `rule`")
    rule: str | None = Field(
        description="the deduction's rule, or why a reviewer decides (return.inspection.*)"
    )
    explanation: dict[str, str] = Field(default_factory=dict, description="per locale")


class ReturnRequestedV1(IntegrationEvent):
    """Review approved the refund, and the policy wants the goods back before the money moves:
    the RMA, the address, the items and the ship-by date (status awaiting_return)."""

    TYPE: ClassVar[str] = "refund.return_requested.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC, examples=["RMA-7K3Q9D2M"])
    desired_outcome: DesiredOutcome
    address: ReturnAddressModel
    items: list[ReturnLine]
    amount: MoneyModel = Field(description="approved, paid after the receipt less deductions")
    ship_by: datetime
    policy_version: str
    rule: str = Field(description="the return rule that wants the goods back (return.*)")
    explanation: dict[str, str] = Field(default_factory=dict, description="per locale")
    decided_by: str
    requested_at: datetime


class ReturnShipByApproachingV1(IntegrationEvent):
    """Reminder: the ship-by date is near and no shipment was posted (sent once)."""

    TYPE: ClassVar[str] = "return.ship_by_approaching.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC)
    ship_by: datetime
    reminded_at: datetime


class ReturnShippedV1(IntegrationEvent):
    """The platform posted the return shipment's carrier and tracking number (intake)."""

    TYPE: ClassVar[str] = "return.shipped.v1"

    order_id: str
    rma: str | None = Field(None, description=RMA_DOC)
    carrier: CarrierCode
    tracking_number: str = Field(description="normalised: upper case, no spaces")
    actor: str
    shipped_at: datetime


class ReturnDeliveredV1(IntegrationEvent):
    """The carrier's tracking says the goods reached the return address; the warehouse's
    receipt clock starts."""

    TYPE: ClassVar[str] = "return.delivered.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC)
    carrier: CarrierCode
    tracking_number: str
    delivered_at: datetime = Field(description="the carrier's time of delivery")
    receipt_by: datetime = Field(description="by when the warehouse must record the receipt")
    recorded_at: datetime


class ReturnReceivedV1(IntegrationEvent):
    """The warehouse recorded what came back, item by item, and the inspection's outcome:
    `refund` (review.approved.v1 follows with `amount`), `exchange` (refund.exchange_ready.v1
    follows) or `reviewer` (the inspection contradicts the claim: a person decides)."""

    TYPE: ClassVar[str] = "return.received.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC)
    items: list[InspectedLine]
    outcome: Literal["refund", "exchange", "reviewer"]
    amount: MoneyModel = Field(description="what the inspection leaves to pay (0 for reviewer)")
    deducted: MoneyModel = Field(description="the sum of the items' deductions")
    received_by: str
    received_at: datetime


class ReturnDeadlineMissedV1(IntegrationEvent):
    """A return deadline passed. `ship_by`: the customer sent nothing, the refund is closed
    as return_not_shipped and the order's balance released. `receipt_by`: the warehouse
    recorded no receipt, so the return is accepted as expected and paid (the buyer-protection
    rule, cited in `rule`)."""

    TYPE: ClassVar[str] = "return.deadline_missed.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC)
    deadline: Literal["ship_by", "receipt_by"]
    due: datetime
    consequence: Literal["closed", "accepted"]
    rule: str = Field(examples=["return.ship_by_missed", "return.receipt_overdue"])
    missed_at: datetime


class ExchangeReadyV1(IntegrationEvent):
    """An exchange's goods came back as expected: the platform ships the replacement. Money
    moves only when the price differs: then review.approved.v1 pays `difference`."""

    TYPE: ClassVar[str] = "refund.exchange_ready.v1"

    order_id: str
    rma: str = Field(description=RMA_DOC)
    items: list[ReturnLine] = Field(description="what to send again")
    difference: MoneyModel | None = Field(None, description="refunded on top, if any")
    ready_at: datetime


# Published by review, in the order a return takes them (ReturnShippedV1 is intake's).
REVIEW_PUBLISHES: tuple[type[IntegrationEvent], ...] = (
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReturnDeliveredV1,
    ReturnReceivedV1,
    ReturnDeadlineMissedV1,
    ExchangeReadyV1,
)
