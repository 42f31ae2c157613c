"""A tenant's Stripe account: an API secret key, the webhook endpoint's signing secrets,
and the API host (Stripe's own unless pointed at the emulator).

Stripe has no key pairs to match, so validation is format: the key kinds Stripe issues
(`sk_live_`, `sk_test_`, restricted `rk_live_`/`rk_test_`) and `whsec_` signing secrets.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

STRIPE_API_BASE = "https://api.stripe.com"

# Stripe's secret and restricted keys; a publishable key (pk_) cannot refund anything.
_SECRET_KEY = re.compile(r"^(sk|rk)_(live|test)_[A-Za-z0-9]{16,247}$")
# Signing secrets as the Dashboard and `POST /v1/webhook_endpoints` show them.
_WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=]{16,128}$")


def _fingerprint(secret: str) -> str:
    # A short digest identifies a secret in listings without letting anyone recover it.
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


class StripeAccount(BaseModel):
    """The credentials one tenant configures for refunds through its own Stripe account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret_key: SecretStr
    # The current signing secret, and the previous one while Stripe rolls it (at most two).
    webhook_secrets: list[SecretStr] = Field(min_length=1, max_length=2)
    api_base: str = STRIPE_API_BASE

    @field_validator("secret_key")
    @classmethod
    def _known_key_kind(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if key.startswith("pk_"):
            raise ValueError("a publishable key (pk_) cannot create refunds: use sk_ or rk_")
        if not _SECRET_KEY.match(key):
            raise ValueError("not a Stripe secret key: expected sk_live_, sk_test_ or rk_…")
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _signing_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        secrets = [secret.get_secret_value() for secret in value]
        for index, secret in enumerate(secrets):
            if not _WEBHOOK_SECRET.match(secret):
                raise ValueError(
                    f"webhook secret {index + 1} is not a Stripe signing secret (whsec_…)"
                )
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same webhook secret is given twice")
        return value

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", value):
            raise ValueError("api_base must be an http(s) URL, e.g. https://api.stripe.com")
        return value.rstrip("/")

    @property
    def live(self) -> bool:
        return "_live_" in self.secret_key.get_secret_value()

    def summary(self) -> dict[str, Any]:
        """What may be listed: the key's kind and last four characters, the secrets' digests."""
        key = self.secret_key.get_secret_value()
        return {
            "provider": "stripe",
            "key_kind": "restricted" if key.startswith("rk_") else "secret",
            "mode": "live" if self.live else "test",
            "secret_key_last4": key[-4:],
            "webhook_secret_fingerprints": [
                _fingerprint(secret.get_secret_value()) for secret in self.webhook_secrets
            ],
            "api_base": self.api_base,
        }
