"""The emulator's side of Alipay's open-platform protocol: what it signs and checks, its
answers' shape, and the few numbers and times Alipay writes.

Written from Alipay's public docs on its own (not shared with the payout client), so the
two can disagree and the tests catch it.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

BEIJING = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
BILL_URL_QUERY = "alipay.data.dataservice.bill.downloadurl.query"
METHODS = frozenset({REFUND, REFUND_QUERY, BILL_URL_QUERY})

# Code and message pairs of Alipay's public answer codes.
SUCCESS = ("10000", "Success")
UNAVAILABLE = ("20000", "Service Currently Unavailable")
MISSING = ("40001", "Missing Required Arguments")
INVALID = ("40002", "Invalid Arguments")
BUSINESS_FAILED = ("40004", "Business Failed")


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def signing_string(params: dict[str, str], *, drop: tuple[str, ...]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k not in drop and v != "")
    return "&".join(k + "=" + v for k, v in pairs)


def rsa2_sign(key: rsa.RSAPrivateKey, text: str) -> str:
    raw = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def rsa2_valid(key: rsa.RSAPublicKey, text: str, signature: str) -> bool:
    try:
        key.verify(
            base64.b64decode(signature), text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def public_key(text: str) -> rsa.RSAPublicKey:
    """PEM, or the bare base64 SubjectPublicKeyInfo Alipay's console shows."""
    text = text.strip()
    if text.startswith("-----"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def signed_answer(method: str, body: dict[str, Any], key: rsa.RSAPrivateKey | None) -> str:
    """`{"<method>_response": {...}, "sign": "..."}`, the sign over the object's exact text."""
    name = response_key(method) if method in METHODS else "error_response"
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if key is None:
        return '{"' + name + '":' + text + "}"
    return '{"' + name + '":' + text + ',"sign":"' + rsa2_sign(key, text) + '"}'


def failure(code: tuple[str, str], sub_code: str, sub_msg: str, **extra: Any) -> dict[str, Any]:
    return {"code": code[0], "msg": code[1], "sub_code": sub_code, "sub_msg": sub_msg, **extra}


def yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def fen_of(text: object) -> int | None:
    """A positive yuan amount with at most two decimals, in fen; None when it is not one."""
    if not isinstance(text, str | int) or isinstance(text, bool):
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    return int(value * 100)


def beijing(at: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(at, BEIJING)
    text = moment.strftime(TIME_FORMAT)
    return f"{text}.{moment.microsecond // 1000:03d}" if millis else text
