"""Sign-in with OpenID Connect: authorization code with PKCE (S256), through authlib's
Starlette client (discovery, state, nonce and the id_token's signature are authlib's).

The session keeps the person's access token (and refresh token): pages call the services
with it. Roles come from the access token's roles claim, read after checking the token's
signature against the provider's JWKS and its issuer; the services check it again (audience,
expiry) on every call, so the navigation is a convenience and never an authority.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.starlette_client import OAuth
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from services.console.middleware import ROTATE
from services.console.settings import ConsoleSettings

SIGNED_WITH = ["RS256", "PS256", "ES256", "EdDSA"]  # a provider's keys: never a shared secret
REFRESH_MARGIN_SECONDS = 30  # refresh a token this close to expiry, not after a 401


class SignInFailed(Exception):
    pass


class Provider:
    """The OpenID Provider, as the console uses it."""

    def __init__(
        self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.oauth = OAuth()
        kwargs: dict[str, Any] = {"scope": "openid profile", "code_challenge_method": "S256"}
        if transport is not None:
            kwargs["transport"] = transport
        self.oauth.register(
            "provider",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs=kwargs,
        )
        self._transport = transport

    @property
    def client(self) -> Any:
        return self.oauth.provider

    async def metadata(self) -> dict[str, Any]:
        found: dict[str, Any] = await self.client.load_server_metadata()
        return found

    async def claims_of(self, access_token: str) -> dict[str, Any]:
        """The claims of an access token whose signature and issuer check out."""
        try:
            try:
                keys = KeySet.import_key_set(await self.client.fetch_jwk_set())
                token = jwt.decode(access_token, keys, algorithms=SIGNED_WITH)
            except JoseError:  # perhaps a key the provider rotated in since: fetch them again
                keys = KeySet.import_key_set(await self.client.fetch_jwk_set(force=True))
                token = jwt.decode(access_token, keys, algorithms=SIGNED_WITH)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": (await self.metadata())["issuer"]}
            ).validate(token.claims)
        except (JoseError, ValueError) as error:
            raise SignInFailed(f"access token refused: {error}") from None
        return dict(token.claims)

    def person_of(self, claims: dict[str, Any]) -> tuple[str, list[str]]:
        """Who the services record as the actor (the person claim, as they read it) and the
        roles at the roles claim's dotted path (Keycloak: `realm_access.roles`)."""
        person = claims.get(self.settings.oidc_person_claim) or claims.get("sub") or ""
        value: Any = claims
        for part in self.settings.oidc_roles_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        roles = [role for role in value if isinstance(role, str)] if isinstance(value, list) else []
        return str(person), roles

    async def signed_in(self, session: dict[str, Any], token: dict[str, Any]) -> None:
        """Start the person's session from the provider's token answer."""
        claims = token.get("userinfo") or {}
        access = token["access_token"]
        username, roles = self.person_of(await self.claims_of(access))
        locale = session.get("locale")
        session.clear()
        session.update(
            {
                ROTATE: True,
                "sub": str(claims.get("sub", "")),
                # The services record the person claim as the actor: "assigned to me".
                "username": username,
                "name": str(claims.get("name") or username),
                # OIDC's standard `zoneinfo` claim: the person's times are shown in it.
                "zone": str(claims.get("zoneinfo") or ""),
                "roles": roles,
                "access_token": access,
                "refresh_token": token.get("refresh_token"),
                "expires_at": _expiry(token),
                "id_token": token.get("id_token"),
                "csrf": secrets.token_urlsafe(32),
            }
        )
        if locale:
            session["locale"] = locale

    async def fresh_token(self, session: dict[str, Any]) -> str | None:
        """The person's access token, refreshed when it is about to expire; None when it
        cannot be (then they sign in again)."""
        token = session.get("access_token")
        if not token:
            return None
        if float(session.get("expires_at") or 0) > time.time() + REFRESH_MARGIN_SECONDS:
            return str(token)
        refresh = session.get("refresh_token")
        if not refresh:
            return None
        metadata = await self.metadata()
        async with httpx.AsyncClient(timeout=10, transport=self._transport) as http:
            answer = await http.post(
                metadata["token_endpoint"],
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                auth=(self.settings.oidc_client_id, self.settings.oidc_client_secret),
            )
        if answer.status_code != 200:
            return None
        renewed = answer.json()
        session["access_token"] = renewed["access_token"]
        session["refresh_token"] = renewed.get("refresh_token", refresh)
        session["expires_at"] = _expiry(renewed)
        session["username"], session["roles"] = self.person_of(
            await self.claims_of(renewed["access_token"])
        )
        return str(renewed["access_token"])

    async def end_session_url(self, id_token: str | None) -> str:
        """Where the browser goes to sign out at the provider too (or home, if it has none)."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        home = self.settings.console_url.rstrip("/") + "/"
        if not endpoint:
            return home
        query = {"client_id": self.settings.oidc_client_id, "post_logout_redirect_uri": home}
        if id_token:
            query["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(query)}"


def _expiry(token: dict[str, Any]) -> float:
    if token.get("expires_at"):
        return float(token["expires_at"])
    return time.time() + float(token.get("expires_in") or 300)
