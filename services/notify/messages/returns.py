"""Customer messages about a return (退货退款): the step each of review's return events
announces, the facts stored with it, and the values its templates are written with.

Facts are stored JSON-plain, like every step's (money as {amount, currency}, times as ISO
text), so a stored step renders the same whatever the contracts become. What the customer
reads is derived here at render time: money from minor units, deadlines as a time of day
in the shops' zone, a deduction's reason in the customer's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.notify.messages.formatting import format_deadline, format_money, in_locale
from shared.contracts import (
    ExchangeReadyV1,
    IntegrationEvent,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
)
from shared.money import Money
from shared.vocabulary import TRACKING_FORMATS

# The carriers' names as a customer knows them (zh-CN: TRACKING_FORMATS' display names).
CARRIER_NAMES_EN = {
    "shunfeng": "SF Express",
    "yuantong": "YTO Express",
    "zhongtong": "ZTO Express",
    "yunda": "Yunda Express",
    "jd": "JD Logistics",
    "ems": "EMS",
}
# The return events the customer is told of, each as a step of its own.
TOLD = (
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReturnDeliveredV1,
    ReturnReceivedV1,
    ReturnDeadlineMissedV1,
    ExchangeReadyV1,
)
# How a list is joined in running text.
SEPARATORS = {"zh-CN": "、", "en": ", "}


def return_step(payload: IntegrationEvent) -> tuple[str, dict[str, Any]] | None:
    """The step a return event announces to the customer, with the facts its message states;
    None for anything else (the shipment the platform posts is the customer's own doing)."""
    if not isinstance(payload, TOLD):
        return None
    where = {"order_id": payload.order_id, "rma": payload.rma}
    if isinstance(payload, ReturnRequestedV1):
        return "return_requested", {
            **where,
            "desired_outcome": payload.desired_outcome,
            "address": payload.address.model_dump(mode="json"),
            "items": [{"sku": line.sku, "quantity": line.quantity} for line in payload.items],
            "amount": payload.amount.model_dump(),
            "ship_by": payload.ship_by.isoformat(),
        }
    if isinstance(payload, ReturnShipByApproachingV1):
        return "return_ship_by_approaching", {**where, "ship_by": payload.ship_by.isoformat()}
    if isinstance(payload, ReturnDeliveredV1):
        return "return_delivered", {
            **where,
            "carrier": payload.carrier,
            "tracking_number": payload.tracking_number,
            "receipt_by": payload.receipt_by.isoformat(),
        }
    if isinstance(payload, ReturnReceivedV1):
        return "return_received", {
            **where,
            "outcome": payload.outcome,
            "amount": payload.amount.model_dump(),
            "deducted": payload.deducted.model_dump(),
            "lines": [
                {
                    "sku": line.sku,
                    "expected": line.expected,
                    "received": line.received,
                    "deducted": line.deducted.model_dump(),
                    "rule": line.rule,
                    "explanation": dict(line.explanation),
                }
                for line in payload.items
            ],
        }
    if isinstance(payload, ReturnDeadlineMissedV1):
        # `missed`, not `deadline`: in_review's facts use that key for a decision date.
        return "return_deadline_missed", {
            **where,
            "missed": payload.deadline,
            "due": payload.due.isoformat(),
        }
    if isinstance(payload, ExchangeReadyV1):
        difference = payload.difference.model_dump() if payload.difference else None
        return "exchange_ready", {
            **where,
            "items": [{"sku": line.sku, "quantity": line.quantity} for line in payload.items],
            "difference": difference,
        }
    return None


def return_values(facts: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """The values a return step's templates use, for what its facts hold (in `locale`, one of
    the template locales); `deductions` and `shortfalls` are lists, the rest text."""
    values: dict[str, Any] = {}
    if facts.get("rma"):
        values["rma"] = str(facts["rma"])
    for deadline in ("ship_by", "receipt_by", "due"):
        if deadline in facts:
            values[deadline] = format_deadline(facts[deadline], locale)
    if "address" in facts:
        values["address_lines"] = _address(facts["address"], locale)
        values["address"] = SEPARATORS[locale].join(values["address_lines"])
    if "items" in facts:
        values["item_lines"] = [f"{item['sku']} × {item['quantity']}" for item in facts["items"]]
        values["items"] = SEPARATORS[locale].join(values["item_lines"])
    if "carrier" in facts:
        code = facts["carrier"]
        known = TRACKING_FORMATS.get(code)
        zh_name = known.name if known else code
        values["carrier"] = zh_name if locale == "zh-CN" else CARRIER_NAMES_EN.get(code, code)
        values["tracking_number"] = str(facts["tracking_number"])
    if "desired_outcome" in facts:
        values["desired_outcome"] = str(facts["desired_outcome"])
    if "outcome" in facts:
        values["outcome"] = str(facts["outcome"])
    if "missed" in facts:
        values["missed"] = str(facts["missed"])
    if "deducted" in facts:
        values["deducted"] = format_money(Money(**facts["deducted"]), locale)
        values["deductions"] = _deductions(facts.get("lines", []), locale)
        values["shortfalls"] = _shortfalls(facts.get("lines", []), locale)
    if facts.get("difference"):
        values["difference"] = format_money(Money(**facts["difference"]), locale)
    return values


def _address(address: Mapping[str, Any], locale: str) -> list[str]:
    """The return address as it goes on a parcel: recipient and phone, the lines, postcode."""
    postcode = f"邮编 {address['postcode']}" if locale == "zh-CN" else str(address["postcode"])
    return [f"{address['name']} {address['phone']}", *address["lines"], postcode]


def _deductions(lines: list[Mapping[str, Any]], locale: str) -> list[str]:
    """One line per item the inspection took money off, with the reason: the rule's
    explanation in the customer's language, or the rule itself when it gave none."""
    found = []
    for line in lines:
        if line["deducted"]["amount"] <= 0:
            continue
        amount = format_money(Money(**line["deducted"]), locale)
        reason = in_locale(line["explanation"], locale) or str(line["rule"] or "")
        if locale == "zh-CN":
            found.append(f"{line['sku']}：扣除 {amount}，原因：{reason}")
        else:
            found.append(f"{line['sku']}: {amount} deducted. Reason: {reason}")
    return found


def _shortfalls(lines: list[Mapping[str, Any]], locale: str) -> list[str]:
    """Items of which fewer came back than were to: units not back are not refunded."""
    return [
        f"{line['sku']}：应退 {line['expected']} 件，收到 {line['received']} 件"
        if locale == "zh-CN"
        else f"{line['sku']}: {line['received']} of {line['expected']} received"
        for line in lines
        if line["received"] < line["expected"]
    ]


CNY = "CNY"
SAMPLE_RMA = "RMA-7K3Q9D2M"
# Facts as notify stores them for each return step, to look at a template with
# (`refunds notify render`) and to test them; the reason carries markup that HTML escapes.
SAMPLE_FACTS: dict[str, dict[str, Any]] = {
    "return_requested": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "desired_outcome": "full_refund",
        "address": {
            "name": "退货仓 收货组",
            "phone": "+86 21 5555 0100",
            "lines": ["上海市浦东新区 申江路 100 号", "3 号库 退货组"],
            "postcode": "201203",
        },
        "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 2}, {"sku": "SOCKS-M", "quantity": 1}],
        "amount": {"amount": 25800, "currency": CNY},
        "ship_by": "2026-11-20T15:59:00+00:00",  # 23:59 in Shanghai
    },
    "return_ship_by_approaching": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "ship_by": "2026-11-20T15:59:00+00:00",
    },
    "return_delivered": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "carrier": "shunfeng",
        "tracking_number": "SF1234567890123",
        "receipt_by": "2026-11-25T10:00:00+00:00",
    },
    "return_received": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "outcome": "refund",
        "amount": {"amount": 23800, "currency": CNY},
        "deducted": {"amount": 2000, "currency": CNY},
        "lines": [
            {
                "sku": "TSHIRT-L-WHITE",
                "expected": 2,
                "received": 2,
                "deducted": {"amount": 2000, "currency": CNY},
                "rule": "return.inspection.tags_removed",
                "explanation": {
                    "zh-CN": "吊牌已剪 <b>（示例）</b>",
                    "en": "The tags were removed <b>(sample)</b>",
                },
            },
            {
                "sku": "SOCKS-M",
                "expected": 1,
                "received": 1,
                "deducted": {"amount": 0, "currency": CNY},
                "rule": None,
                "explanation": {},
            },
        ],
    },
    "return_deadline_missed": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "missed": "ship_by",
        "due": "2026-11-20T15:59:00+00:00",
    },
    "exchange_ready": {
        "order_id": "ORD-1001",
        "rma": SAMPLE_RMA,
        "items": [{"sku": "TSHIRT-M-WHITE", "quantity": 1}],
        "difference": None,
    },
}
