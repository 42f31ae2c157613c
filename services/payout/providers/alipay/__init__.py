"""Alipay (open platform, RSA2 public-key mode): a tenant's own merchant app refunds its
customers' Alipay payments. Our own code on `cryptography` and httpx; sandbox/ALIPAY.md
describes the protocol as the emulator in sandbox/alipay/ serves it.

Modules: signing (RSA2, keys), amounts (yuan, Beijing time), account (the pydantic model),
client (the route), callbacks (the notification verifier), settlement (the trade bill).
"""

from services.payout.providers.alipay.account import DEFAULT_API_BASE, AlipayAccount
from services.payout.providers.alipay.callbacks import AlipayCallbacks
from services.payout.providers.alipay.client import AlipayRoute
from services.payout.providers.alipay.settlement import parse
from services.payout.providers.base import CallbackAnswer, ProviderSpec

PROVIDER = ProviderSpec(
    name="alipay",
    methods=frozenset({"alipay"}),
    account=AlipayAccount,
    route=AlipayRoute,
    callbacks=AlipayCallbacks,
    parse_settlement=parse,
    # Alipay retries a notification (up to 25 h) until it reads exactly this body.
    answer=CallbackAnswer(200, "text/plain", b"success"),
)

__all__ = [
    "DEFAULT_API_BASE",
    "PROVIDER",
    "AlipayAccount",
    "AlipayCallbacks",
    "AlipayRoute",
    "parse",
]
