"""Development credentials for the Stripe emulator: public by design, only for the sandbox
and `refunds dev`. Stripe has no key pairs (no PEMs to paste): an API secret key and the
webhook endpoints' `whsec_` signing secrets are all there is. Generated once with
`secrets.token_hex` / `token_urlsafe`; the emulator accepts nothing else by default.
"""

from __future__ import annotations

from typing import Any

DEV_SECRET_KEY = "sk_test_sbx2a98ba168cc4d56a51940b9754f9e6f0"  # noqa: S105 - public by design
# The signing secret of endpoints given on the command line, and the one it replaced:
# after a roll (POST /_sandbox/webhook_endpoints/{id}/roll) both sign, as Stripe does.
DEV_WEBHOOK_SECRET = "whsec_T654295kVZetrSFdIU66C5FYq41o13N4"  # noqa: S105 - public by design
DEV_PREVIOUS_WEBHOOK_SECRET = "whsec_ePepgYKX6ZGPdiiNCabtxjACDnn0KfS4"  # noqa: S105 - public by design


def dev_account(base_url: str) -> dict[str, Any]:
    """The account settings a dev tenant configures to refund through the emulator at
    `base_url` (the shape of services.payout.providers.stripe.StripeAccount)."""
    return {
        "secret_key": DEV_SECRET_KEY,
        "webhook_secrets": [DEV_WEBHOOK_SECRET],
        "api_base": base_url.rstrip("/"),
    }
