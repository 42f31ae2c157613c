"""The provider's signing key and the tokens it signs (joserfc: no crypto of our own).

The RS256 key is generated once and kept in `SANDBOX_DATA_DIR/identity-key.json`, so a
restarted provider keeps every token it issued valid, as a real IdP's key rotation would
not break sessions either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

KEY_FILE = "identity-key.json"
ALGORITHM = "RS256"
ACCESS_TTL = 15 * 60
ID_TTL = 15 * 60
ACCESS_TYPE = "at+jwt"  # RFC 9068 §2.1


def load_or_create_key(data_dir: Path) -> RSAKey:
    """The signing key from `data_dir`, made (and written owner-only) the first time."""
    path = data_dir / KEY_FILE
    if path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": ALGORITHM})
    key.ensure_kid()
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(key.as_dict(private=True), out)
    os.replace(partial, path)  # two starting processes: the last one's key wins for both
    return RSAKey.import_key(json.loads(path.read_text()))


class Signer:
    """Signs the provider's tokens and verifies its own access and ID tokens."""

    def __init__(self, key: RSAKey, issuer: str) -> None:
        self.key = key
        self.issuer = issuer

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.key]).as_dict(private=False))

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": typ}
        return jwt.encode(header, claims, self.key, algorithms=[ALGORITHM])

    def access_token(
        self, person: dict[str, Any], client_id: str, scope: str, audience: str
    ) -> tuple[str, int]:
        """An RFC 9068 access token for `person` (their claims) and its lifetime."""
        now = int(time.time())
        claims = {
            **person,
            "iss": self.issuer,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + ACCESS_TTL,
            "jti": uuid.uuid4().hex,
        }
        return self.sign(claims, ACCESS_TYPE), ACCESS_TTL

    def id_token(
        self, person: dict[str, Any], client_id: str, nonce: str | None, auth_time: int, at: str
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **person,
            "iss": self.issuer,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + ID_TTL,
            "auth_time": auth_time,
            "at_hash": _left_half_hash(at),
        }
        if nonce:
            claims["nonce"] = nonce
        return self.sign(claims, "JWT")

    def verified(self, token: str, *, audience: str | None = None) -> dict[str, Any] | None:
        """The claims of a token this provider signed (and, given, for `audience`); None for
        anything else. `exp` is checked only when `audience` is given (logout accepts an
        expired id_token_hint, as OIDC RP-initiated logout allows)."""
        try:
            decoded = jwt.decode(token, self.key, algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self.issuer:
            return None
        if audience is not None:
            registry = jwt.JWTClaimsRegistry(
                leeway=5, aud={"essential": True, "value": audience}, exp={"essential": True}
            )
            try:
                registry.validate(claims)
            except JoseError:
                return None
        return claims


def _left_half_hash(token: str) -> str:
    """`at_hash` (OIDC Core §3.1.3.6): base64url of the left half of SHA-256 of the token."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
