"""Staff authentication for every service's staff API: bearer JWTs naming a person and roles.

A staff token (HS256, `shared.staff_tokens`) carries `sub` (the person, recorded as the
actor of whatever they do), `roles` (some of `STAFF_ROLES`) and `exp`. Routes
ask for the roles they allow: `Depends(auth.dependency("reviewer", "admin"))`.
A missing, malformed, forged or expired token is a 401 problem; a valid token
without any of the allowed roles is a 403 problem.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's
# annotations at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.http import Problem, problem_response
from shared.staff_tokens import STAFF_ROLES, InvalidToken, decode
from shared.stamping import identify

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    bearerFormat="JWT",
    description="A staff JWT (HS256): `sub` is the person, `roles` lists their roles.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

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
    """Verifies staff tokens signed with `secret` and checks their roles."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a staff token secret is required")
        self._secret = secret

    def staff(self, token: str) -> Staff:
        """The staff member a token names; raises a 401 Problem for any bad token."""
        try:
            claims = decode(token, self._secret)
        except InvalidToken as invalid:
            raise _unauthorized(f"The token is not valid: {invalid}.") from None
        return _staff_from(claims)

    def dependency(self, *allowed_roles: str) -> Callable[..., Staff]:
        """A FastAPI dependency answering the caller, if they hold one of `allowed_roles`
        (no roles named: any staff member)."""
        unknown = sorted(set(allowed_roles) - set(STAFF_ROLES))
        if unknown:
            raise ValueError(f"unknown staff roles {unknown}; known: {list(STAFF_ROLES)}")
        allowed = frozenset(allowed_roles)

        def staff_member(credentials: Credentials) -> Staff:
            if credentials is None or not credentials.credentials.strip():
                raise _unauthorized("Send `Authorization: Bearer <staff token>`.")
            staff = self.staff(credentials.credentials.strip())
            if allowed and not staff.roles & allowed:
                raise Problem(
                    403,
                    "Forbidden",
                    f"This needs one of the roles {sorted(allowed)}; "
                    f"the token holds {sorted(staff.roles)}.",
                    kind="forbidden",
                )
            identify(f"staff:{staff.sub}", via="roles:" + ",".join(sorted(staff.roles)))
            return staff

        return staff_member


def staff_problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Like `shared.http.problem_responses`, with 401/403 described for staff tokens."""
    return {status: problem_response(status, STAFF_PROBLEMS.get(status)) for status in statuses}


def _staff_from(claims: dict[str, Any]) -> Staff:
    sub, roles = claims.get("sub"), claims.get("roles")
    if "exp" not in claims:
        raise _unauthorized("The token has no `exp`; staff tokens must expire.")
    if not isinstance(sub, str) or not sub.strip():
        raise _unauthorized("The token names no person (`sub`).")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise _unauthorized("The token lists no roles (`roles`).")
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown:
        raise _unauthorized(f"The token names unknown roles {unknown}.")
    return Staff(sub=sub, roles=frozenset(roles))


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )
