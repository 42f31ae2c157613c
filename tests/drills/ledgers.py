"""Every provider's own record of the refunds it took, read over HTTP, in one shape.

The drills count money where it moves, not where payout says it moved: the sandbox
gateway's ledger (`GET /ledger`), Stripe's refund list (`GET /v1/refunds`, paged with
`starting_after`, as Stripe's API lists them), the Alipay emulator's `GET /test/refunds`
and the WeChat Pay emulator's `GET /sandbox/refunds`. A refund the provider closed or
failed is listed too, as not having moved money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.stripe.dev_keys import DEV_SECRET_KEY
from tests.drills.workload import Urls

PROVIDERS = ("gateway", "stripe", "alipay", "wechatpay")
# Each provider's word for a refund whose money moved.
MOVED = {
    "gateway": "success",
    "stripe": "succeeded",
    "alipay": "REFUND_SUCCESS",
    "wechatpay": "SUCCESS",
}


@dataclass(frozen=True)
class Movement:
    """One refund in one provider's records."""

    provider: str
    merchant_refund_no: str  # the number payout sent: `po_…`, or `po_…-2` for a later series
    payment_reference: str  # the payment it was drawn from, as the order gave it
    amount: int  # minor units, as the provider records them
    currency: str  # upper case
    status: str  # the provider's own word

    @property
    def moved_money(self) -> bool:
        return self.status == MOVED[self.provider]

    @property
    def payout(self) -> str:
        """The payout the number belongs to (`po_…`), whichever series sent it."""
        return self.merchant_refund_no.split("-")[0]


def read_ledgers(urls: Urls) -> dict[str, list[Movement]]:
    """Every refund each provider recorded, by provider."""
    with httpx.Client(timeout=30) as client:
        return {
            "gateway": _gateway(client, urls.gateway),
            "stripe": _stripe(client, urls.stripe),
            "alipay": _alipay(client, urls.alipay),
            "wechatpay": _wechatpay(client, urls.wechatpay),
        }


def _gateway(client: httpx.Client, base: str) -> list[Movement]:
    # The ledger lists only the refunds whose money moved.
    entries = _json(client.get(f"{base}/ledger"))["entries"]
    return [
        Movement(
            "gateway",
            e["merchant_refund_no"],
            e["payment_reference"],
            e["amount"],
            e["currency"],
            "success",
        )
        for e in entries
    ]


def _stripe(client: httpx.Client, base: str) -> list[Movement]:
    headers = {"Authorization": f"Bearer {DEV_SECRET_KEY}"}
    found: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 100}
    while True:
        page = _json(client.get(f"{base}/v1/refunds", params=params, headers=headers))
        found += page["data"]
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    return [
        Movement(
            "stripe",
            r["metadata"].get("merchant_refund_no", ""),
            r["payment_intent"] or r["charge"],
            r["amount"],
            r["currency"].upper(),
            r["status"],
        )
        for r in found
    ]


def _alipay(client: httpx.Client, base: str) -> list[Movement]:
    refunds = _json(client.get(f"{base}/test/refunds"))["refunds"]
    return [
        Movement(
            "alipay",
            r["out_request_no"],
            r["out_trade_no"] or r["trade_no"],
            r["amount"],
            "CNY",  # Alipay refunds in yuan only
            r["refund_status"],
        )
        for r in refunds
    ]


def _wechatpay(client: httpx.Client, base: str) -> list[Movement]:
    refunds = _json(client.get(f"{base}/sandbox/refunds"))["refunds"]
    return [
        Movement(
            "wechatpay",
            r["out_refund_no"],
            r["out_trade_no"] or r["transaction_id"],
            r["amount"]["refund"],
            r["amount"]["currency"],
            r["status"],
        )
        for r in refunds
    ]


def _json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, f"{response.request.url}: {response.text[:300]}"
    return dict(response.json())
