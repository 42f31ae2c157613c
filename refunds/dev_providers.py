"""The dev tenant's own payment provider accounts, connected at the local stack's emulators.

`refunds dev` (and the tests that ask for it) connects them through payout's admin API,
exactly as a platform's admin would with `refunds providers set`, so the README's example
refund goes to Stripe, Alipay or WeChat Pay by its `payment.method`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from refunds.ports import HOST, StackError
from sandbox.alipay.dev_keys import dev_account as alipay_account
from sandbox.stripe.dev_keys import dev_account as stripe_account
from sandbox.wechatpay.dev_keys import dev_account as wechatpay_account
from shared.auth import DEV_TENANT
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims

if TYPE_CHECKING:
    from refunds.devstack import Stack

# Each emulator's account settings for a dev tenant, given the emulator's base URL.
DEV_ACCOUNTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "stripe": stripe_account,
    "alipay": alipay_account,
    "wechatpay": wechatpay_account,
}
# Which of our payment methods each provider serves for the dev tenant.
METHODS = {"stripe": "card", "alipay": "alipay", "wechatpay": "wechat_pay"}


def emulator_args(provider: str, port: int, data_dir: Path, payout_url: str) -> list[str]:
    """A provider emulator's options: where it listens and keeps its state; Stripe also
    where it sends the dev tenant's webhooks (an endpoint set in Stripe, not per request)
    and, for references nobody created there, payments in yuan like the README's."""
    args = ["--host", HOST, "--port", str(port), "--data-dir", str(data_dir / provider)]
    if provider == "stripe":
        callbacks = f"{payout_url}/v1/providers/stripe/{DEV_TENANT}/callbacks"
        args += ["--webhook-url", callbacks, "--default-currency", "cny"]
    return args


def connect_dev_accounts(stack: Stack, providers: Iterable[str], tenant: str = DEV_TENANT) -> None:
    """Connect `tenant`'s account at each emulator in `providers`; StackError if refused."""
    token = encode(staff_claims("refunds-dev", ["admin"], 300), DEV_JWT_SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    for provider in providers:
        url = f"{stack.url('payout')}/v1/admin/tenants/{tenant}/providers/{provider}"
        try:
            answer = httpx.put(
                url, json=DEV_ACCOUNTS[provider](stack.url(provider)), headers=headers, timeout=30
            )
        except httpx.HTTPError as error:
            raise StackError("payout", f"connecting the dev {provider} account: {error}") from error
        if answer.status_code not in (200, 201):
            raise StackError(
                "payout", f"payout refused the dev {provider} account: {answer.text[:500]}"
            )
