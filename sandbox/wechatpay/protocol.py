"""The emulator's side of WeChat Pay APIv3's protocol, written from its public docs
(independently of services/payout/providers/wechatpay, so each checks the other):
request signatures checked, answers and callbacks signed, resources encrypted."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandbox.wechatpay import dev_keys

SCHEME = "WECHATPAY2-SHA256-RSA2048"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
CLOCK_SKEW_SECONDS = 300  # WeChat Pay refuses requests signed more than 5 minutes away
_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Merchant:
    """A merchant registered with the emulator: who may sign requests, and its APIv3 key."""

    mchid: str
    serial_no: str
    public_key: rsa.RSAPublicKey
    apiv3_key: bytes


@dataclass(frozen=True)
class Platform:
    """The emulator's own key, published as a certificate (serial) and as a public key id."""

    private_key: rsa.RSAPrivateKey
    certificate_serial: str
    public_key_id: str


def dev_merchant() -> Merchant:
    key = serialization.load_pem_private_key(dev_keys.MERCHANT_PRIVATE_KEY.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Merchant(
        dev_keys.MCHID, dev_keys.MERCHANT_SERIAL_NO, key.public_key(), dev_keys.APIV3_KEY.encode()
    )


def dev_platform() -> Platform:
    key = serialization.load_pem_private_key(dev_keys.PLATFORM_PRIVATE_KEY.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Platform(key, dev_keys.PLATFORM_SERIAL_NO, dev_keys.PLATFORM_PUBLIC_KEY_ID)


class SignError(Exception):
    """A request whose Authorization does not hold: answered 401 SIGN_ERROR."""


def check_authorization(
    header: str,
    method: str,
    target: str,
    body: bytes,
    merchants: dict[str, Merchant],
    now: float,
) -> Merchant:
    """The merchant whose key signed this request, or SignError saying why not."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        raise SignError(f"Authorization scheme must be {SCHEME}")
    params = dict(_PARAM.findall(rest))
    missing = [
        n for n in ("mchid", "nonce_str", "signature", "timestamp", "serial_no") if n not in params
    ]
    if missing:
        raise SignError(f"Authorization lacks {', '.join(missing)}")
    merchant = merchants.get(params["mchid"])
    if merchant is None:
        raise SignError(f"no merchant {params['mchid']}")
    if params["serial_no"].upper() != merchant.serial_no.upper():
        raise SignError("serial_no is not the merchant's registered API certificate")
    if (
        not params["timestamp"].isdigit()
        or abs(now - int(params["timestamp"])) > CLOCK_SKEW_SECONDS
    ):
        raise SignError("timestamp is more than 5 minutes away")
    message = (
        f"{method}\n{target}\n{params['timestamp']}\n{params['nonce_str']}\n".encode()
        + body
        + b"\n"
    )
    try:
        signature = base64.b64decode(params["signature"], validate=True)
        merchant.public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignError("signature does not verify with the merchant's key") from None
    return merchant


def signed_headers(
    platform: Platform, body: bytes, *, serial: str, signtest: bool = False
) -> dict[str, str]:
    """The Wechatpay-* headers of an answer or a callback carrying `body`."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(
        platform.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    if signtest:
        # WeChat Pay's probe: a deliberately wrong signature a merchant must refuse.
        signature = SIGNTEST_PREFIX + signature[len(SIGNTEST_PREFIX) :]
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEME,
        "Request-ID": secrets.token_hex(16),
    }


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """An AEAD_AES_256_GCM resource as callbacks carry it (nonce: 12 printable characters)."""
    alphabet = string.ascii_letters + string.digits
    nonce = "".join(secrets.choice(alphabet) for _ in range(12))
    cipher = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "original_type": "refund",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(cipher).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def decrypt_sensitive(platform: Platform, ciphertext: str) -> str | None:
    """A field the merchant encrypted with our public key (RSA-OAEP SHA-1); None if it
    does not decrypt."""
    sha1 = hashes.SHA1()  # noqa: S303 — WeChat Pay's documented OAEP hash
    try:
        plain = platform.private_key.decrypt(
            base64.b64decode(ciphertext, validate=True),
            padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None),
        )
        return plain.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
