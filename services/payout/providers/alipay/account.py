"""A tenant's Alipay open-platform app ("public key mode"): its id, its RSA2 key pair and
Alipay's public key, as the tenant pastes them from Alipay's key tool and console."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from services.payout.providers.alipay.signing import (
    fingerprint,
    load_private_key,
    load_public_key,
    same_key,
)

DEFAULT_API_BASE = "https://openapi.alipay.com"


class AlipayAccount(BaseModel):
    """Credentials of one merchant app. Every key is parsed on validation, so a bad paste is
    refused when it is configured, naming the field, not when a refund first needs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Alipay's app ids are 16 digits (e.g. 2014072300007148).
    app_id: str = Field(pattern=r"^[0-9]{16}$")
    # PKCS#1 or PKCS#8, PEM or the bare base64 Alipay's key tool writes.
    app_private_key: SecretStr
    # The key Alipay signs answers and notifications with (console: "支付宝公钥").
    alipay_public_key: str
    # Optional: when given it must be the private key's half (what was uploaded to Alipay).
    app_public_key: str | None = None
    api_base: str = Field(default=DEFAULT_API_BASE, pattern=r"^https?://[^\s/]+(:[0-9]+)?(/.*)?$")

    @field_validator("app_private_key")
    @classmethod
    def _private_key_reads(cls, value: SecretStr) -> SecretStr:
        load_private_key(value.get_secret_value())
        return value

    @field_validator("alipay_public_key")
    @classmethod
    def _alipay_key_reads(cls, value: str, info: ValidationInfo) -> str:
        key = load_public_key(value)
        private = info.data.get("app_private_key")
        if private is not None and same_key(
            key, load_private_key(private.get_secret_value()).public_key()
        ):
            # A frequent mix-up: the app's own public key pasted where Alipay's belongs.
            raise ValueError("this is the app's own public key, not Alipay's public key")
        return value

    @field_validator("app_public_key")
    @classmethod
    def _app_key_matches(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        key = load_public_key(value)
        private = info.data.get("app_private_key")
        if private is not None and not same_key(
            key, load_private_key(private.get_secret_value()).public_key()
        ):
            raise ValueError("does not match app_private_key")
        return value

    @field_validator("api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def private_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.app_private_key.get_secret_value())

    def alipay_key(self) -> rsa.RSAPublicKey:
        return load_public_key(self.alipay_public_key)

    def summary(self) -> dict[str, Any]:
        """Non-secret facts for listings: the app id, where it calls, and key fingerprints
        (SHA-256 of each public key's DER; the private key is named by its public half)."""
        return {
            "app_id": self.app_id,
            "api_base": self.api_base,
            "app_key_sha256": fingerprint(self.private_key().public_key()),
            "alipay_key_sha256": fingerprint(self.alipay_key()),
        }
