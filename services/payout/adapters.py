"""Payout routes behind one interface, chosen by the order's payment method.

`card`, `alipay`, `wechat_pay` and `bank_transfer` go through the payment gateway
(the method passed along); `store_balance` is a credit in payout's own ledger.
Every route is idempotent by merchant refund number and can be asked what it
knows about a number, so the executor can always query before it sends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from services.payout.domain import GATEWAY_METHODS, STORE_BALANCE
from services.payout.fx import Rate
from services.payout.gateway import GatewayReceipt, SandboxGateway
from shared.money import Money

if TYPE_CHECKING:
    from services.payout.application import PayoutApplication


@dataclass(frozen=True)
class RefundOrder:
    merchant_refund_no: str
    refund_id: str
    tenant: str
    amount: Money
    method: str
    payment_reference: str


class RefundRoute(Protocol):
    async def refund(self, order: RefundOrder) -> GatewayReceipt:
        """Move the money (or have it accepted); raises Transient/PermanentGatewayError."""

    async def query(self, merchant_refund_no: str) -> GatewayReceipt | None:
        """What the route knows about the number; None when it never received it."""


class RateSource(Protocol):
    async def rate(self, base: str, quote: str) -> Rate:
        """`quote` per `base` as the provider converts; raises Transient/PermanentGatewayError."""


class GatewayRoute:
    """A provider route through the HTTP gateway; completions come back to `notify_url`."""

    def __init__(self, gateway: SandboxGateway, notify_url: str | None) -> None:
        self.gateway = gateway
        self.notify_url = notify_url

    async def refund(self, order: RefundOrder) -> GatewayReceipt:
        return await self.gateway.refund(
            merchant_refund_no=order.merchant_refund_no,
            amount=order.amount.amount,
            currency=order.amount.currency,
            method=order.method,
            reference=order.payment_reference,
            notify_url=self.notify_url,
        )

    async def query(self, merchant_refund_no: str) -> GatewayReceipt | None:
        return await self.gateway.query(merchant_refund_no)

    async def rate(self, base: str, quote: str) -> Rate:
        return await self.gateway.rate(base, quote)


class StoreBalanceRoute:
    """Pays by recording a store credit, once per merchant refund number."""

    def __init__(self, app: PayoutApplication) -> None:
        self.app = app

    async def refund(self, order: RefundOrder) -> GatewayReceipt:
        credit = await asyncio.to_thread(self.app.credit_store_balance, order)
        return _receipt(credit.reference, credit.at)

    async def query(self, merchant_refund_no: str) -> GatewayReceipt | None:
        credit = await asyncio.to_thread(self.app.store_credit, merchant_refund_no)
        return None if credit is None else _receipt(credit.reference, credit.at)


def _receipt(reference: str, at: datetime) -> GatewayReceipt:
    return GatewayReceipt(provider_reference=reference, executed_at=at, status="success")


class Routes:
    """The route for each payment method."""

    def __init__(
        self, gateway: RefundRoute, store_balance: RefundRoute, rates: RateSource | None = None
    ) -> None:
        self.gateway = gateway
        self.store_balance = store_balance
        # Exchange rates for cross-border payouts: the provider's own, by default.
        if rates is None and isinstance(gateway, GatewayRoute):
            rates = gateway
        self.rates = rates

    def for_method(self, method: str) -> RefundRoute:
        if method == STORE_BALANCE:
            return self.store_balance
        if method in GATEWAY_METHODS:
            return self.gateway
        raise ValueError(f"no payout route for payment method {method!r}")
