"""Stripe as a payout provider: a tenant's own Stripe account refunds its card payments.

- `account` — the tenant's credentials (secret key, webhook signing secrets, API host);
- `client` — the route, on Stripe's official SDK, idempotent by merchant refund number;
- `callbacks` — webhook signature verification and the refund events;
- `settlement` — the itemized balance change report, parsed into settlement lines;
- `units`, `objects` — Stripe's amounts and refund objects in our words.
"""

from services.payout.providers.base import ProviderSpec
from services.payout.providers.stripe.account import StripeAccount
from services.payout.providers.stripe.callbacks import ANSWER, StripeCallbacks
from services.payout.providers.stripe.client import StripeRoute
from services.payout.providers.stripe.objects import METHOD
from services.payout.providers.stripe.settlement import parse

PROVIDER = ProviderSpec(
    name="stripe",
    methods=frozenset({METHOD}),
    account=StripeAccount,
    route=StripeRoute,
    callbacks=StripeCallbacks,
    parse_settlement=parse,
    answer=ANSWER,
)

__all__ = ["PROVIDER", "StripeAccount", "StripeCallbacks", "StripeRoute", "parse"]
