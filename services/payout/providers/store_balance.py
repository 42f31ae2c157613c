"""Store balance: the refund is a credit in payout's own ledger, once per merchant refund number."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from services.payout.providers.base import ProviderReceipt, RefundOrder

if TYPE_CHECKING:
    from services.payout.application import PayoutApplication


class StoreBalanceRoute:
    """Pays by recording a store credit, once per merchant refund number."""

    def __init__(self, app: PayoutApplication) -> None:
        self.app = app

    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        credit = await asyncio.to_thread(self.app.credit_store_balance, order)
        return _receipt(credit.reference, credit.at)

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        credit = await asyncio.to_thread(self.app.store_credit, order.merchant_refund_no)
        return None if credit is None else _receipt(credit.reference, credit.at)


def _receipt(reference: str, at: datetime) -> ProviderReceipt:
    return ProviderReceipt(provider_reference=reference, executed_at=at, status="success")
