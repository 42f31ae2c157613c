"""Minimal HS256 JSON Web Tokens (RFC 7519) for staff, built on the standard library only."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

# Public on purpose: only the local dev stack uses it, and only when no secret is configured.
DEV_JWT_SECRET = "dev-only-jwt-secret-not-for-production"  # noqa: S105
SECRET_ENV = "REFUNDS_JWT_SECRET"  # noqa: S105 - the variable's name, not a secret
STAFF_ROLES = ("reviewer", "senior_reviewer", "finance", "auditor", "admin", "warehouse")

_HEADER = {"alg": "HS256", "typ": "JWT"}
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


class InvalidToken(ValueError):
    """The token is malformed, not signed with the expected secret, or expired."""


def encode(claims: Mapping[str, Any], secret: str) -> str:
    """Sign ``claims`` with HMAC-SHA256 and return the compact `header.payload.signature`."""
    signing_input = f"{_b64_json(_HEADER)}.{_b64_json(claims)}"
    return f"{signing_input}.{_b64encode(_sign(signing_input, secret))}"


def decode(token: str, secret: str, *, now: int | None = None) -> dict[str, Any]:
    """Verify the signature and `exp`/`nbf`, then return the claims; raise InvalidToken."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("expected three dot-separated segments")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(header_b64, "header")
    # Pinning the algorithm refuses `alg: none` and algorithm-confusion tokens.
    if header.get("alg") != "HS256":
        raise InvalidToken(f"unsupported algorithm {header.get('alg')!r}")
    expected = _sign(f"{header_b64}.{payload_b64}", secret)
    if not hmac.compare_digest(expected, _b64decode(signature_b64, "signature")):
        raise InvalidToken("signature does not match")
    claims = _json_object(payload_b64, "payload")
    _check_times(claims, int(time.time()) if now is None else now)
    return claims


def staff_claims(
    sub: str, roles: Iterable[str], ttl: int, *, now: int | None = None
) -> dict[str, Any]:
    """Claims of a staff token: who (`sub`), what they may do (`roles`) and for how long."""
    issued = int(time.time()) if now is None else now
    return {"sub": sub, "roles": list(roles), "iat": issued, "exp": issued + ttl}


def secret_from_env(environ: Mapping[str, str]) -> str:
    """`REFUNDS_JWT_SECRET`, or the dev constant when unset and REFUNDS_ENV is dev (its default)."""
    secret = environ.get(SECRET_ENV, "")
    if secret:
        return secret
    env = environ.get("REFUNDS_ENV", "dev")
    if env == "dev":
        return DEV_JWT_SECRET
    raise LookupError(f"{SECRET_ENV} must be set when REFUNDS_ENV={env}")


def _check_times(claims: dict[str, Any], now: int) -> None:
    for name in ("exp", "nbf"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidToken(f"claim {name!r} must be a number")
    if "exp" in claims and now >= claims["exp"]:
        raise InvalidToken("token has expired")
    if "nbf" in claims and now < claims["nbf"]:
        raise InvalidToken("token is not valid yet")


def _sign(signing_input: str, secret: str) -> bytes:
    return hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()


def _b64_json(value: Mapping[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(segment: str, what: str) -> bytes:
    # urlsafe_b64decode silently skips foreign characters; check the alphabet first.
    if not _SEGMENT.match(segment) or len(segment) % 4 == 1:
        raise InvalidToken(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidToken(f"{what} is not base64url") from error


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidToken(f"{what} is not JSON") from error
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value
