"""WeChat Pay's abnormal refund, as finance's action: after the payout recorded the request
(`Payout.request_abnormal_refund`, now `processing`), ask WeChat Pay to credit the refund to
a bank card, and settle the payout from what it answers.

The request is recorded before it leaves, as a dispatch is, so WeChat Pay can never pay a
refund our records still call failed (finance could then pay it a second time). Whatever
goes wrong after that leaves the payout `processing` under the same number, and the
outcome arrives as for any refund: WeChat Pay's callback, or the poller's status query,
which turns a refund still ABNORMAL back into a failure finance can act on again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from services.payout.adapters import TenantProviders, order_of
from services.payout.application import PayoutApplication
from services.payout.domain import ABNORMAL_REFUND_PROVIDER, AbnormalRefundTarget, Payout
from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundRoute,
    TransientProviderError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankCard:
    """The payer's card, held in memory for the one request to WeChat Pay."""

    bank_type: str
    account: str
    real_name: str

    def __repr__(self) -> str:  # never a card number or a name in a log line
        return f"BankCard({self.bank_type}, ****{self.account[-4:]})"


@runtime_checkable
class AbnormalRefundRoute(RefundRoute, Protocol):
    """A route that can re-route an ABNORMAL refund (WeChatPayRoute)."""

    async def apply_abnormal_refund(
        self,
        refund_id: str,
        merchant_refund_no: str,
        *,
        to: str = "MERCHANT_BANK_CARD",
        bank_type: str | None = None,
        bank_account: str | None = None,
        real_name: str | None = None,
    ) -> ProviderReceipt: ...


async def reroute(
    app: PayoutApplication,
    providers: TenantProviders,
    payout_id: uuid.UUID,
    target: AbnormalRefundTarget,
    card: BankCard | None = None,
) -> Payout:
    """Ask WeChat Pay to credit the payout's ABNORMAL refund to `target`; the payout after.

    WeChat Pay wants its own refund id, which a failed payout does not keep: a status query
    gives it, and confirms the refund is still ABNORMAL before anything is asked.
    """
    payout = await asyncio.to_thread(app.payout, payout_id)
    if payout.status != "processing":
        return payout  # settled meanwhile (a callback, the poller)
    number, method = payout.number, payout.method
    try:
        route = await asyncio.to_thread(providers.route, payout.tenant, ABNORMAL_REFUND_PROVIDER)
    except PermanentProviderError as error:  # the account was removed: nothing can leave
        return await _failed_again(app, payout, f"abnormal refund not sent: {error}")
    if not isinstance(route, AbnormalRefundRoute):
        return await _failed_again(app, payout, "abnormal refund not sent: no such API")
    try:
        found = await route.query(order_of(payout))
        if found is None or found.status != "abnormal":
            return await _settle(app, payout, found)
        receipt = await route.apply_abnormal_refund(
            found.provider_reference,
            number,
            to=target,
            bank_type=card.bank_type if card else None,
            bank_account=card.account if card else None,
            real_name=card.real_name if card else None,
        )
    except TransientProviderError as error:
        # Maybe sent, maybe not: the poller's query settles it either way.
        log.warning("abnormal refund of %s not confirmed: %s", number, error)
        return payout
    except PermanentProviderError as error:
        return await _refused(app, payout, route, error)
    return await asyncio.to_thread(
        app.record_receipt, payout_id, number, method, receipt, app.clock()
    )


async def _failed_again(app: PayoutApplication, payout: Payout, cause: str) -> Payout:
    """Back to failed (and ABNORMAL at WeChat Pay): finance may ask again."""
    return await asyncio.to_thread(
        app.record_failure, payout.id, cause, app.clock(), final=True, provider_status="abnormal"
    )


async def _settle(app: PayoutApplication, payout: Payout, found: ProviderReceipt | None) -> Payout:
    """WeChat Pay no longer calls the refund ABNORMAL: record what it does say."""
    if found is None:  # it knows no refund under the number: nothing can move
        return await asyncio.to_thread(
            app.record_failure,
            payout.id,
            "abnormal refund: WeChat Pay knows no refund under this number",
            app.clock(),
            final=True,
        )
    return await asyncio.to_thread(
        app.record_receipt, payout.id, payout.number, payout.method, found, app.clock()
    )


async def _refused(
    app: PayoutApplication,
    payout: Payout,
    route: RefundRoute,
    error: PermanentProviderError,
) -> Payout:
    """WeChat Pay refused the request (e.g. a bank type it does not know). Failed again,
    with its reason, only when it verifiably still calls the refund ABNORMAL: refused
    because another request already re-routed it must not read as a failure."""
    try:
        found = await route.query(order_of(payout))
    except (TransientProviderError, PermanentProviderError):
        return payout  # the poller settles it
    if found is not None and found.status == "abnormal":
        return await _failed_again(app, payout, f"abnormal refund refused by WeChat Pay: {error}")
    return await _settle(app, payout, found)
