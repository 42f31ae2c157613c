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
from services.console.refreshing import Reread, Save, SingleFlight, Spent
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
        self.refreshes = SingleFlight()

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

    async def fresh_token(
        self,
        session: dict[str, Any],
        session_id: str | None = None,
        *,
        reread: Reread | None = None,
        save: Save | None = None,
    ) -> str | None:
        """The person's access token, refreshed when it is about to expire; None when it
        cannot be (then they sign in again). Refreshes of one session are single-flight
        (services/console/refreshing.py): `reread` loads the stored session again, `save`
        stores it at once."""
        token = session.get("access_token")
        if not token:
            return None
        if float(session.get("expires_at") or 0) > time.time() + REFRESH_MARGIN_SECONDS:
            return str(token)
        if not session.get("refresh_token"):
            return None
        try:
            renewed = await self.refreshes.refresh(
                session_id, session, self._renew, reread=reread, save=save
            )
        except SignInFailed:  # refused otherwise, or a token that does not check out
            return None
        return str(session["access_token"]) if renewed else None

    async def _renew(self, refresh: str) -> dict[str, Any]:
        """The session's token fields from a refresh grant; Spent when the provider says the
        token is unknown, spent or expired; SignInFailed for any other refusal."""
        metadata = await self.metadata()
        async with httpx.AsyncClient(timeout=10, transport=self._transport) as http:
            answer = await http.post(
                metadata["token_endpoint"],
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                auth=(self.settings.oidc_client_id, self.settings.oidc_client_secret),
            )
        if answer.status_code != 200:
            if answer.status_code == 400 and _oauth_error(answer) == "invalid_grant":
                raise Spent
            raise SignInFailed(f"refresh refused: HTTP {answer.status_code}")
        renewed = answer.json()
        username, roles = self.person_of(await self.claims_of(renewed["access_token"]))
        return {
            "access_token": renewed["access_token"],
            "refresh_token": renewed.get("refresh_token", refresh),
            "expires_at": _expiry(renewed),
            "username": username,
            "roles": roles,
        }

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


def _oauth_error(answer: httpx.Response) -> str:
    """The `error` of an OAuth 2 error answer (RFC 6749 §5.2), or ""."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _expiry(token: dict[str, Any]) -> float:
    if token.get("expires_at"):
        return float(token["expires_at"])
    return time.time() + float(token.get("expires_in") or 300)
