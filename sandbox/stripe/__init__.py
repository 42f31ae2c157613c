"""Stripe emulator: Stripe's refund API as its public docs describe it (sandbox/STRIPE.md).

Modules: dev_keys (public dev credentials, `dev_account`), faults (switches), store
(SQLite state), webhooks (signed event delivery), report (balance change report CSV) and
app (the HTTP app and `main`; `python -m sandbox.stripe`).
"""

from sandbox.stripe.app import create_app, main
from sandbox.stripe.dev_keys import (
    DEV_PREVIOUS_WEBHOOK_SECRET,
    DEV_SECRET_KEY,
    DEV_WEBHOOK_SECRET,
    dev_account,
)
from sandbox.stripe.webhooks import sign, signature_header

__all__ = [
    "DEV_PREVIOUS_WEBHOOK_SECRET",
    "DEV_SECRET_KEY",
    "DEV_WEBHOOK_SECRET",
    "create_app",
    "dev_account",
    "main",
    "sign",
    "signature_header",
]
