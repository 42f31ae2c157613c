"""A tenant's WeChat Pay merchant account: credentials, each parsed and cross-checked when set.

Fields are validated in declaration order, so a pair is checked by the later field's
validator against the earlier one (already parsed) and pydantic names the later field:
the certificate against the serial and the private key, the platform key id against the
platform key, the platform certificate against the merchant's own key.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from services.payout.providers.wechatpay import signing

DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
APIV3_KEY_BYTES = 32  # AES-256-GCM
_MCHID = re.compile(r"^[0-9]{1,32}$")
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,64}$")
_PUBLIC_KEY_ID = re.compile(r"^PUB_KEY_ID_[0-9A-Za-z_]{1,64}$")


class WeChatPayAccount(BaseModel):
    """What a tenant configures for WeChat Pay (APIv3, direct merchant)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mchid: str
    merchant_private_key: SecretStr
    merchant_serial_no: str
    merchant_certificate: str | None = Field(default=None, validate_default=True)
    apiv3_key: SecretStr
    platform_public_key: str | None = None
    platform_public_key_id: str | None = Field(default=None, validate_default=True)
    platform_certificate: str | None = Field(default=None, validate_default=True)
    api_base: str = DEFAULT_API_BASE

    @field_validator("mchid")
    @classmethod
    def _mchid(cls, value: str) -> str:
        if not _MCHID.match(value):
            raise ValueError("must be the merchant number WeChat Pay issued (digits)")
        return value

    @field_validator("merchant_private_key")
    @classmethod
    def _private_key(cls, value: SecretStr) -> SecretStr:
        try:
            signing.load_private_key(value.get_secret_value())
        except ValueError as error:
            raise ValueError(f"merchant_private_key {error}") from None
        return value

    @field_validator("merchant_serial_no")
    @classmethod
    def _serial(cls, value: str) -> str:
        if not _SERIAL.match(value.strip()):
            raise ValueError("must be the merchant API certificate's serial number in hex")
        return value.strip().upper()

    @field_validator("merchant_certificate")
    @classmethod
    def _merchant_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            cert = signing.load_certificate(value)
        except ValueError as error:
            raise ValueError(f"merchant_certificate {error}") from None
        serial = info.data.get("merchant_serial_no")
        if serial is not None and signing.key_id(serial) != signing.serial_hex(cert):
            raise ValueError(
                f"has serial {signing.serial_hex(cert)}, not merchant_serial_no {serial}"
            )
        private = info.data.get("merchant_private_key")
        if private is not None:
            key = signing.load_private_key(private.get_secret_value())
            if signing.public_der(key.public_key()) != signing.public_der(_rsa(cert)):
                raise ValueError("certifies another key than merchant_private_key")
        return value

    @field_validator("apiv3_key")
    @classmethod
    def _apiv3_key(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value().encode())
        if size != APIV3_KEY_BYTES:
            raise ValueError(f"must be exactly {APIV3_KEY_BYTES} bytes (got {size})")
        return value

    @field_validator("platform_public_key")
    @classmethod
    def _platform_public_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            key = signing.load_public_key(value)
        except ValueError as error:
            raise ValueError(f"platform_public_key {error}") from None
        _not_merchant_key(key, info)
        return value

    @field_validator("platform_public_key_id")
    @classmethod
    def _platform_public_key_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_key = info.data.get("platform_public_key") is not None
        if value is None:
            if has_key:
                raise ValueError("is required with platform_public_key (PUB_KEY_ID_...)")
            return None
        if not _PUBLIC_KEY_ID.match(value.strip()):
            raise ValueError("must be WeChat Pay's public key id, PUB_KEY_ID_...")
        if not has_key and "platform_public_key" not in _failed(info):
            raise ValueError("names a key, but platform_public_key is not given")
        return value.strip()

    @field_validator("platform_certificate")
    @classmethod
    def _platform_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("platform_public_key") is None and not _failed(info) & {
                "platform_public_key",
                "platform_public_key_id",
            }:
                raise ValueError(
                    "is required unless platform_public_key and platform_public_key_id are given"
                )
            return None
        try:
            cert = signing.load_certificate(value)
        except ValueError as error:
            raise ValueError(f"platform_certificate {error}") from None
        _not_merchant_key(_rsa(cert), info)
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http(s) base URL, e.g. https://api.mch.weixin.qq.com")
        return value.rstrip("/")

    # --- parsed views (validated above, so these cannot fail) ---

    def private_key(self) -> rsa.RSAPrivateKey:
        return signing.load_private_key(self.merchant_private_key.get_secret_value())

    def apiv3_key_bytes(self) -> bytes:
        return self.apiv3_key.get_secret_value().encode()

    def platform_keys(self) -> dict[str, rsa.RSAPublicKey]:
        """WeChat Pay's keys by the id its `Wechatpay-Serial` header names them with."""
        keys: dict[str, rsa.RSAPublicKey] = {}
        if self.platform_public_key is not None and self.platform_public_key_id is not None:
            keys[signing.key_id(self.platform_public_key_id)] = signing.load_public_key(
                self.platform_public_key
            )
        if self.platform_certificate is not None:
            cert = signing.load_certificate(self.platform_certificate)
            keys[signing.serial_hex(cert)] = _rsa(cert)
        return keys

    def summary(self) -> dict[str, Any]:
        """Non-secret facts for listing: ids, key fingerprints, the last 4 of the APIv3 key."""
        facts: dict[str, Any] = {
            "mchid": self.mchid,
            "merchant_serial_no": self.merchant_serial_no,
            "merchant_key_sha256": signing.fingerprint(self.private_key().public_key()),
            "apiv3_key_last4": self.apiv3_key.get_secret_value()[-4:],
            "api_base": self.api_base,
        }
        if self.platform_public_key is not None:
            facts["platform_public_key_id"] = self.platform_public_key_id
            key = signing.load_public_key(self.platform_public_key)
            facts["platform_public_key_sha256"] = signing.fingerprint(key)
        if self.platform_certificate is not None:
            cert = signing.load_certificate(self.platform_certificate)
            facts["platform_certificate_serial"] = signing.serial_hex(cert)
            facts["platform_certificate_sha256"] = signing.fingerprint(_rsa(cert))
            facts["platform_certificate_expires"] = cert.not_valid_after_utc.isoformat()
        return facts


def _rsa(cert: Any) -> rsa.RSAPublicKey:
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)  # load_certificate admits RSA only
    return key


def _failed(info: ValidationInfo) -> set[str]:
    """Fields declared before this one whose own validation failed (absent from data)."""
    order = list(WeChatPayAccount.model_fields)
    return {name for name in order[: order.index(str(info.field_name))] if name not in info.data}


def _not_merchant_key(key: rsa.RSAPublicKey, info: ValidationInfo) -> None:
    # The commonest paste mistake: the merchant's own key where WeChat Pay's belongs.
    private = info.data.get("merchant_private_key")
    if private is not None:
        mine = signing.load_private_key(private.get_secret_value()).public_key()
        if signing.public_der(mine) == signing.public_der(key):
            raise ValueError("is the merchant's own key, not WeChat Pay's platform key")
