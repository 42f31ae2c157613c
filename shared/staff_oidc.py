"""Staff access tokens from an OpenID Provider (Keycloak, the sandbox identity provider, …):
JWTs (RFC 9068) verified against the issuer's JWKS with `joserfc`.

What is checked: the signature (RS256 or ES256, with the key the header's `kid` names in the
issuer's JWKS), `typ` (`at+jwt` or `JWT`), `iss`, `aud`, `exp` and `nbf` (with a small
leeway). The person is the configured claim (`preferred_username`, else `sub`); roles come
from the configured claim (a dotted path such as Keycloak's `realm_access.roles`), and only
`STAFF_ROLES` are kept: a provider's own roles (`offline_access`, …) mean nothing here.

The JWKS is fetched with a blocking HTTP call (short timeout) the first time a provider's
token arrives, and again when a token names a `kid` we do not hold, at most once a minute
(the provider rotated its key). The staff dependencies are sync functions, which FastAPI
runs in its thread pool, so a fetch holds up one worker thread, never the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shared.staff_tokens import STAFF_ROLES, InvalidToken, check_times

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
LEEWAY_SECONDS = 30  # clocks of the provider and the services drift a little
REFETCH_SECONDS = 60.0  # an unknown kid fetches the JWKS again at most this often
RETRY_SECONDS = 5.0  # after a failed fetch (the provider still starting), try again soon
FETCH_TIMEOUT = 3.0


@dataclass(frozen=True)
class OidcConfig:
    """Where staff tokens come from and how to read them (REFUNDS_OIDC_*)."""

    issuer: str
    audience: str = "refunds"
    roles_claim: str = "roles"
    person_claim: str = "preferred_username"
    jwks_url: str | None = None


class IssuerKeys:
    """The issuer's JWKS, fetched when needed and cached; thread-safe."""

    def __init__(
        self,
        config: OidcConfig,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._fetch = fetch or _get_json
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None
        self._failed = False

    def key_set(self, kid: str) -> KeySet:
        """A key set holding `kid`, fetching the JWKS if we have none or the kid is new."""
        with self._lock:
            if self._keys is None or not _holds(self._keys, kid):
                wait = RETRY_SECONDS if self._failed else REFETCH_SECONDS
                if self._fetched_at is None or self._clock() - self._fetched_at >= wait:
                    self._refresh()
            if self._keys is None:
                raise InvalidToken("the issuer's keys could not be fetched")
            if not _holds(self._keys, kid):
                raise InvalidToken(f"no key {kid!r} in the issuer's JWKS")
            return self._keys

    def _refresh(self) -> None:
        self._fetched_at = self._clock()
        try:
            url = self._config.jwks_url or self._jwks_url_from_discovery()
            self._keys = KeySet.import_key_set(self._fetch(url))  # type: ignore[arg-type]
            self._failed = False
        except (httpx.HTTPError, JoseError, ValueError, KeyError, TypeError) as error:
            # The previous keys (if any) stay in use; tokens signed with them still verify.
            log.warning("fetching the JWKS of %s failed: %s", self._config.issuer, error)
            self._failed = True

    def _jwks_url_from_discovery(self) -> str:
        discovery = self._fetch(
            self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        if discovery.get("issuer") != self._config.issuer:
            raise ValueError(f"discovery names issuer {discovery.get('issuer')!r}")
        url = discovery["jwks_uri"]
        if not isinstance(url, str):
            raise ValueError("discovery has no jwks_uri")
        return url


class OidcVerifier:
    """Verifies a provider's access token; answers the person and their staff roles."""

    def __init__(self, config: OidcConfig, keys: IssuerKeys | None = None) -> None:
        self.config = config
        self._keys = keys or IssuerKeys(config)

    def verify(
        self, token: str, header: dict[str, Any], *, now: int | None = None
    ) -> tuple[str, frozenset[str]]:
        """(person, roles) of a valid token; raises InvalidToken for anything wrong."""
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"unsupported algorithm {alg!r}")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken(f"typ {typ!r} is not an access token's")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the header names no key (`kid`)")
        try:
            decoded = jwt.decode(token, self._keys.key_set(kid), algorithms=[alg])
        except JoseError as error:
            raise InvalidToken(f"signature does not match ({error.error})") from None
        except ValueError as error:
            raise InvalidToken(f"malformed token ({error})") from None
        claims = dict(decoded.claims)
        self._check_claims(claims, int(time.time()) if now is None else now)
        return _person(claims, self.config.person_claim), _roles(claims, self.config.roles_claim)

    def _check_claims(self, claims: dict[str, Any], now: int) -> None:
        if claims.get("iss") != self.config.issuer:
            raise InvalidToken(f"issuer {claims.get('iss')!r} is not trusted")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.config.audience not in audiences:
            raise InvalidToken(f"audience {audience!r} is not {self.config.audience!r}")
        if claims.get("exp") is None:
            raise InvalidToken("the token has no `exp`; staff tokens must expire")
        check_times(claims, now, LEEWAY_SECONDS)


def _holds(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _person(claims: dict[str, Any], person_claim: str) -> str:
    for name in (person_claim, "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise InvalidToken("the token names no person (`sub`)")


def _roles(claims: dict[str, Any], path: str) -> frozenset[str]:
    """The staff roles at a dotted claim path; a missing claim is no roles (a 403 later)."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, list):
        return frozenset()
    return frozenset(role for role in value if isinstance(role, str) and role in STAFF_ROLES)


def _get_json(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body
