"""The providers a tenant can connect its own merchant account at, by name."""

from __future__ import annotations

from services.payout.providers import alipay, stripe, wechatpay
from services.payout.providers.base import ProviderSpec

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec for spec in (stripe.PROVIDER, alipay.PROVIDER, wechatpay.PROVIDER)
}
