"""Alipay's open-platform signatures (RSA2): the string to sign, keys as Alipay hands them
out, and the exact response text a synchronous answer's `sign` covers.

Alipay signs and verifies "RSA2" = RSA-SHA256 with PKCS#1 v1.5 padding, base64 encoded.
The signed string is every parameter but `sign` (and, for notifications, `sign_type`)
with a non-empty value, sorted by name in ASCII order, joined as `k=v&k=v` with the raw,
not URL-encoded, values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Alipay's keys are 2048-bit RSA; anything shorter is no key Alipay would issue or accept.
MIN_KEY_BITS = 2048


def content_to_sign(params: Mapping[str, str], exclude: Iterable[str] = ("sign",)) -> str:
    """The `k=v&...` string Alipay signs: sorted by name, without `exclude` and empty values."""
    skipped = set(exclude)
    return "&".join(
        f"{name}={params[name]}" for name in sorted(params) if name not in skipped and params[name]
    )


def sign(private_key: rsa.RSAPrivateKey, content: str) -> str:
    """`sign` for `content`: base64 of RSA-SHA256 PKCS#1 v1.5 over its UTF-8 bytes."""
    signature = private_key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    """Whether `signature` (base64) signs exactly `content` with `public_key`."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _der_of(text: str) -> bytes | None:
    """Bare base64 (as Alipay's key tool writes it, maybe wrapped) → DER; None if not base64."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An app private key: PKCS#1 or PKCS#8, PEM or bare base64 DER; ValueError naming why."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("private key is empty")
    key: object
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(stripped.encode(), password=None)
        else:
            der = _der_of(stripped)
            if der is None:
                raise ValueError("private key is neither PEM nor base64 DER")
            key = _load_der_private(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ValueError(f"private key cannot be read: {_short(error)}") from None
    return _rsa_private(key)


def _load_der_private(der: bytes) -> object:
    # load_der_private_key reads PKCS#8 and the traditional (PKCS#1) RSA encoding alike.
    return serialization.load_der_private_key(der, password=None)


def _rsa_private(key: object) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("private key is not an RSA key (Alipay's RSA2 needs RSA)")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"private key has {key.key_size} bits, Alipay's RSA2 needs 2048")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """A public key: X.509 SubjectPublicKeyInfo or PKCS#1, PEM or bare base64 DER."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("public key is empty")
    key: object
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode())
        else:
            der = _der_of(stripped)
            if der is None:
                raise ValueError("public key is neither PEM nor base64 DER")
            key = _load_der_public(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ValueError(f"public key cannot be read: {_short(error)}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public key is not an RSA key (Alipay's RSA2 needs RSA)")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"public key has {key.key_size} bits, Alipay's RSA2 needs 2048")
    return key


def _load_der_public(der: bytes) -> object:
    try:
        return serialization.load_der_public_key(der)
    except ValueError:
        # Bare PKCS#1 RSAPublicKey DER: wrap it as PEM, which names the structure.
        body = base64.encodebytes(der).decode("ascii")
        pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}-----END RSA PUBLIC KEY-----\n"
        return serialization.load_pem_public_key(pem.encode())


def _short(error: Exception) -> str:
    # cryptography's messages can run to paragraphs; the first sentence names the problem.
    return str(error).split(". ")[0].strip() or type(error).__name__


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """SHA-256 (hex) of the key's SubjectPublicKeyInfo DER: the same for every encoding of it."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def same_key(one: rsa.RSAPublicKey, other: rsa.RSAPublicKey) -> bool:
    return one.public_numbers() == other.public_numbers()


def signed_response_text(raw: str, response_key: str) -> str | None:
    """The exact text of `response_key`'s object in a synchronous answer, as Alipay signed it.

    Alipay signs the response object's bytes as sent; re-serialising the parsed JSON would
    change spacing, key order or escapes and break the signature. The object is found by
    decoding from just after its key, so braces inside strings cannot mislead the search.
    """
    decoder = json.JSONDecoder()
    needle = json.dumps(response_key)
    start = 0
    while (found := raw.find(needle, start)) >= 0:
        cursor = found + len(needle)
        while cursor < len(raw) and raw[cursor] in " \t\r\n":
            cursor += 1
        if cursor < len(raw) and raw[cursor] == ":":
            cursor += 1
            while cursor < len(raw) and raw[cursor] in " \t\r\n":
                cursor += 1
            try:
                value, end = decoder.raw_decode(raw, cursor)
            except json.JSONDecodeError:
                return None
            return raw[cursor:end] if isinstance(value, dict) else None
        start = found + 1
    return None
