"""HS256 staff JSON Web Tokens (RFC 7519) signed with a shared secret, made with `joserfc`.

The tokens of `refunds token`, of tests and of deployments without an identity provider.
A provider's RS256/ES256 access tokens are verified in `shared.staff_oidc`; `unverified_header`
tells the two apart.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidPayloadError, JoseError, SecurityWarning
from joserfc.jwk import OctKey

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
    return jwt.encode(dict(_HEADER), dict(claims), _key(secret), algorithms=["HS256"])


def decode(token: str, secret: str, *, now: int | None = None) -> dict[str, Any]:
    """Verify the signature and `exp`/`nbf`, then return the claims; raise InvalidToken."""
    header = unverified_header(token)
    # Pinning the algorithm refuses `alg: none` and algorithm-confusion tokens.
    if header.get("alg") != "HS256":
        raise InvalidToken(f"unsupported algorithm {header.get('alg')!r}")
    try:
        claims = dict(jwt.decode(token, _key(secret), algorithms=["HS256"]).claims)
    except BadSignatureError:
        raise InvalidToken("signature does not match") from None
    except InvalidPayloadError:
        raise InvalidToken("payload is not a JSON object") from None
    except (JoseError, ValueError) as error:
        raise InvalidToken(f"malformed token ({error})") from None
    check_times(claims, int(time.time()) if now is None else now)
    return claims


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, not yet verified: only to choose how to verify."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("expected three dot-separated segments")
    return _json_object(parts[0], "header")


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


def check_times(claims: dict[str, Any], now: int, leeway: int = 0) -> None:
    """`exp` and `nbf` are numbers, and `now` (give or take `leeway`) lies between them."""
    for name in ("exp", "nbf"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidToken(f"claim {name!r} must be a number")
    if claims.get("exp") is not None and now - leeway >= claims["exp"]:
        raise InvalidToken("token has expired")
    if claims.get("nbf") is not None and now + leeway < claims["nbf"]:
        raise InvalidToken("token is not valid yet")


def _key(secret: str) -> OctKey:
    # joserfc warns about short HMAC keys; production settings demand 32+ characters already.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return OctKey.import_key(secret)


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
