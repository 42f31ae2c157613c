"""Staff authentication for every service's staff API: bearer JWTs naming a person and roles.

Two kinds of staff token are accepted, told apart by the header's `alg`:
- HS256, signed with the shared secret (`shared.staff_tokens`; `refunds token`, tests,
  deployments without an identity provider): `sub` (the person, recorded as the actor of
  whatever they do), `roles` (some of `STAFF_ROLES`) and `exp`;
- RS256/ES256 access tokens of the configured OpenID Provider (`shared.staff_oidc`), checked
  against its JWKS; the person and roles come from the configured claims.
 A service's deps.py
names the roles each alias allows, `Reader = staff_with("auditor", "admin")`, checked with the
`StaffAuth` its composition root put on `http.state.staff_auth`. A missing, malformed, forged
or expired token is a 401 problem; a valid token without any of the allowed roles is a 403.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's
# annotations at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.problems import Problem, problem_response, unauthorized
from shared.staff_oidc import OidcConfig, OidcVerifier
from shared.staff_tokens import STAFF_ROLES, InvalidToken, decode, unverified_header
from shared.stamping import identify

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    bearerFormat="JWT",
    description="A staff JWT: HS256 with `sub` and `roles`, or the identity provider's "
    "access token (RS256/ES256, verified against its JWKS).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

Roles = frozenset[str]

STAFF_PROBLEMS: dict[int, str] = {
    401: "Missing, invalid or expired staff token (`Authorization: Bearer <jwt>`).",
    403: "The token's roles do not allow this.",
}


@dataclass(frozen=True)
class Staff:
    """The person behind a verified staff token."""

    sub: str
    roles: frozenset[str]

    @property
    def scope(self) -> str:
        """Whose Idempotency-Keys these are: each person's keys are their own."""
        return f"staff:{self.sub}"


class StaffAuth:
    """Verifies staff tokens signed with `secret`, or issued by the OpenID Provider `oidc`
    names (None: provider tokens are refused), and checks their roles."""

    def __init__(self, secret: str, oidc: OidcConfig | OidcVerifier | None = None) -> None:
        if not secret:
            raise ValueError("a staff token secret is required")
        self._secret = secret
        self._oidc = OidcVerifier(oidc) if isinstance(oidc, OidcConfig) else oidc

    def staff(self, token: str) -> Staff:
        """The staff member a token names; raises a 401 Problem for any bad token."""
        try:
            header = unverified_header(token)
            if header.get("alg") == "HS256" or self._oidc is None:
                return _staff_from(decode(token, self._secret))
            sub, roles = self._oidc.verify(token, header)
        except InvalidToken as invalid:
            raise unauthorized(f"The token is not valid: {invalid}.") from None
        return Staff(sub=sub, roles=roles)

    def member(self, credentials: HTTPAuthorizationCredentials | None, allowed: Roles) -> Staff:
        """The caller, if their token holds one of the `allowed` roles (none: any staff member)."""
        if credentials is None or not credentials.credentials.strip():
            raise unauthorized("Send `Authorization: Bearer <staff token>`.")
        staff = self.staff(credentials.credentials.strip())
        # A provider's token may hold no staff role at all: signed in, but not staff here.
        if not staff.roles or (allowed and not staff.roles & allowed):
            raise Problem(
                403,
                "Forbidden",
                f"This needs one of the roles {sorted(allowed)}; "
                f"the token holds {sorted(staff.roles)}.",
                kind="forbidden",
            )
        identify(f"staff:{staff.sub}", via="roles:" + ",".join(sorted(staff.roles)))
        return staff

    def dependency(self, *allowed_roles: str) -> Callable[..., Staff]:
        """A FastAPI dependency answering the caller, if they hold one of `allowed_roles`
        (no roles named: any staff member); for an app holding this StaffAuth itself."""
        allowed = known_roles(allowed_roles)

        def staff_member(credentials: Credentials) -> Staff:
            return self.member(credentials, allowed)

        return staff_member


def known_roles(roles: tuple[str, ...]) -> Roles:
    """`roles`, each one of `STAFF_ROLES`: a typo fails where the alias is declared."""
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown:
        raise ValueError(f"unknown staff roles {unknown}; known: {list(STAFF_ROLES)}")
    return frozenset(roles)


def staff_member(*roles: str) -> Callable[..., Staff]:
    """The dependency behind `staff_with(*roles)`: the staff member, verified with the app's
    `http.state.staff_auth`, if they hold one of `roles` (401/403 otherwise)."""
    allowed = known_roles(roles)

    def member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.member(credentials, allowed)

    return member


def staff_with(*roles: str) -> Any:
    """An `Annotated[Staff, Depends(...)]` alias for routes: the staff member behind the
    request's token, holding one of `roles` (none named: any staff member)."""
    return Annotated[Staff, Depends(staff_member(*roles))]


def staff_problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Like `shared.http.problem_responses`, with 401/403 described for staff tokens."""
    return {status: problem_response(status, STAFF_PROBLEMS.get(status)) for status in statuses}


def _staff_from(claims: dict[str, Any]) -> Staff:
    sub, roles = claims.get("sub"), claims.get("roles")
    if claims.get("exp") is None:
        raise unauthorized("The token has no `exp`; staff tokens must expire.")
    if not isinstance(sub, str) or not sub.strip():
        raise unauthorized("The token names no person (`sub`).")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise unauthorized("The token lists no roles (`roles`).")
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown:
        raise unauthorized(f"The token names unknown roles {unknown}.")
    return Staff(sub=sub, roles=frozenset(roles))
