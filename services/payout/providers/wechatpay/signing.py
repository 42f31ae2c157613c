"""WeChat Pay APIv3's cryptography, as its docs define it: RSA-SHA256 (PKCS#1 v1.5) signatures
over newline-terminated lines, keys as PEM or base64 DER, AEAD_AES_256_GCM resources.

Pure functions on `cryptography` objects: no I/O, no clock, so the route, the callback
verifier and the account validators share them and tests can pin their inputs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
# WeChat Pay's deliberate mis-signatures probing whether a merchant really verifies.
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
MIN_RSA_BITS = 2048


class DecryptionFailed(ValueError):
    """A resource that does not decrypt (wrong APIv3 key, tampered ciphertext, bad encoding)."""


def _der_from(text: str, kinds: tuple[str, ...]) -> tuple[bytes, bool]:
    """DER bytes from PEM (one of `kinds`) or from bare base64 DER; whether it was PEM."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN "):
        kind = stripped.split("-----", 2)[1].removeprefix("BEGIN ").strip()
        if kind not in kinds:
            raise ValueError(f"is a PEM {kind}, expected one of: {', '.join(kinds)}")
        return stripped.encode("ascii", "replace"), True
    try:
        return base64.b64decode("".join(stripped.split()), validate=True), False
    except (binascii.Error, ValueError):
        raise ValueError("is neither PEM nor base64 DER") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The merchant's API private key (apiclient_key.pem: PKCS#8, or PKCS#1, or its base64)."""
    data, pem = _der_from(text, ("PRIVATE KEY", "RSA PRIVATE KEY"))
    try:
        if pem:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"is not a readable unencrypted private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("is not an RSA private key (WeChat Pay APIv3 signs with RSA)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"is a {key.key_size}-bit RSA key; WeChat Pay needs {MIN_RSA_BITS}")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """WeChat Pay's platform public key (pub_key.pem, SubjectPublicKeyInfo), or its base64."""
    data, pem = _der_from(text, ("PUBLIC KEY",))
    try:
        key = (
            serialization.load_pem_public_key(data)
            if pem
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError) as error:
        raise ValueError(f"is not a readable public key ({error})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("is not an RSA public key")
    return key


def load_certificate(text: str) -> x509.Certificate:
    """An X.509 certificate (the merchant's apiclient_cert.pem, or a platform certificate)."""
    data, pem = _der_from(text, ("CERTIFICATE",))
    try:
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise ValueError(f"is not a readable X.509 certificate ({error})") from None
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise ValueError("does not certify an RSA key")
    return cert


def public_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the public key's DER (SubjectPublicKeyInfo), hex: safe to list and compare."""
    return hashlib.sha256(public_der(key)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    """A certificate's serial as WeChat Pay prints it: upper-case hex."""
    return format(cert.serial_number, "X")


def key_id(serial_or_id: str) -> str:
    """One spelling per key: `PUB_KEY_ID_...` as given, a hex serial upper-case without
    leading zeros (headers and consoles differ in case and padding)."""
    value = serial_or_id.strip()
    if value.startswith(PUBLIC_KEY_ID_PREFIX):
        return value
    try:
        return format(int(value, 16), "X")
    except ValueError:
        return value


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a request's signature covers: method, path with query, timestamp, nonce, body."""
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a response's or callback's signature covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The `Authorization` header of one request."""
    signature = sign(private_key, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def decrypt_resource(apiv3_key: bytes, nonce: str, ciphertext: str, associated_data: str) -> bytes:
    """An AEAD_AES_256_GCM resource's plaintext (ciphertext is base64 of data + 16-byte tag)."""
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return AESGCM(apiv3_key).decrypt(nonce.encode(), data, associated_data.encode())
    except (binascii.Error, ValueError, InvalidTag) as error:
        raise DecryptionFailed(type(error).__name__) from None


def encrypt_sensitive(public_key: rsa.RSAPublicKey, text: str) -> str:
    """A sensitive field (bank account, real name) for WeChat Pay: RSA-OAEP(SHA-1), base64."""
    # SHA-1 inside OAEP is what WeChat Pay specifies for these fields, not our choice.
    sha1 = hashes.SHA1()  # noqa: S303
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None)
    cipher = public_key.encrypt(text.encode(), oaep)
    return base64.b64encode(cipher).decode("ascii")
