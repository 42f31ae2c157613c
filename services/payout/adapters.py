"""Which route pays a payout: the tenant's own provider account for the payment method,
else the default route (the sandbox gateway, or whatever `REFUNDS_GATEWAY_URL` points at);
store balance is always payout's own ledger.

A number once sent stays with the provider it went to (`Payout.provider_of`), so a tenant
who configures another provider meanwhile never has one refund sent to two providers.
"""

from __future__ import annotations

from typing import Protocol

from services.payout.domain import GATEWAY_METHODS, STORE_BALANCE, Payout
from services.payout.providers.base import RateSource, RefundOrder, RefundRoute
from services.payout.providers.gateway import GatewayRoute

GATEWAY = "gateway"  # the provider name of the default route


class TenantProviders(Protocol):
    """The tenants' own provider accounts (services/payout/accounts)."""

    def provider_for(self, tenant: str, method: str) -> str | None:
        """The provider the tenant configured for `method`; None when it has none."""

    def route(self, tenant: str, provider: str) -> RefundRoute:
        """The route of the tenant's account at `provider`; PermanentProviderError when the
        tenant has no such account (any more)."""


class Routes:
    """The route for each payout: chosen by tenant and method, remembered per number."""

    def __init__(
        self,
        gateway: RefundRoute,
        store_balance: RefundRoute,
        rates: RateSource | None = None,
        tenants: TenantProviders | None = None,
    ) -> None:
        self.gateway = gateway
        self.store_balance = store_balance
        self.tenants = tenants
        # Exchange rates for cross-border payouts: the provider's own, by default.
        if rates is None and isinstance(gateway, GatewayRoute):
            rates = gateway
        self.rates = rates

    def provider_for(self, tenant: str, method: str) -> str:
        """Who a new request of `tenant` by `method` goes to."""
        if method == STORE_BALANCE:
            return STORE_BALANCE
        if method not in GATEWAY_METHODS:
            raise ValueError(f"no payout route for payment method {method!r}")
        own = self.tenants.provider_for(tenant, method) if self.tenants is not None else None
        return own or GATEWAY

    def route(self, tenant: str, provider: str) -> RefundRoute:
        if provider == STORE_BALANCE:
            return self.store_balance
        if provider == GATEWAY:
            return self.gateway
        if self.tenants is None:
            raise ValueError(f"no provider accounts configured, asked for {provider!r}")
        return self.tenants.route(tenant, provider)

    def sent_route(self, payout: Payout, number: str, route: str) -> RefundRoute:
        """The route a request of `payout` (number, route) went to, or would go to now."""
        provider = payout.provider_of(number, route) or self.provider_for(payout.tenant, route)
        return self.route(payout.tenant, provider)

    def for_method(self, method: str) -> RefundRoute:
        """The default route of `method` (no tenant account)."""
        return self.route("", self.provider_for("", method))


def order_of(payout: Payout, number: str | None = None, route: str | None = None) -> RefundOrder:
    """The request of `payout` under (number, route): the current ones by default."""
    number = number or payout.number
    route = route or payout.method
    return RefundOrder(
        merchant_refund_no=number,
        refund_id=payout.refund_id,
        tenant=payout.tenant,
        amount=payout.amount_on(route),
        method=route,
        payment_reference=payout.payment_reference,
        first_sent_at=payout.first_sent_at.get(number),
    )
