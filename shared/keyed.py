"""Idempotency-Key on the HTTP side: the header, the keyed request, the (replayed) answer, and
the calls that carry a key: a platform's (by API key) and a staff person's (by token).

Every POST of every service takes the header with Stripe's semantics (see
shared/idempotency.py for how a key is claimed with the command's own events).
"""

# No `from __future__ import annotations`: FastAPI reads the header alias at runtime.

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth import Tenant
from shared.idempotency import KeyedRequest, fingerprint
from shared.staff import Staff, staff_member

IDEMPOTENCY_HELP = (
    "Stripe-style: a retry with the same key and body replays the first answer (with"
    " `Idempotent-Replayed: true`); the same key with another body or endpoint is a 409."
    " Keys belong to the caller (the platform, or the staff person) and are kept 24 h."
)
IdempotencyKey = Annotated[
    str | None,
    Header(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$", description=IDEMPOTENCY_HELP),
]


def keyed(
    scope: str, key: str | None, request: Request, body: BaseModel | None
) -> KeyedRequest | None:
    """The request under its key, within `scope` (a tenant or a staff person); None: no key."""
    if key is None:
        return None
    dumped = body.model_dump(mode="json", by_alias=True) if body is not None else None
    return KeyedRequest(scope, key, fingerprint(request.method, request.url.path, dumped))


class _SerializedJSON(JSONResponse):
    """A JSON response whose body pydantic already serialized (one pass, in its Rust core,
    instead of a dict of JSON values then `json.dumps`)."""

    def render(self, content: Any) -> bytes:
        return bytes(content)


def answer(view: BaseModel, status: int = 200, replayed: bool = False) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return _SerializedJSON(view.__pydantic_serializer__.to_json(view), status, headers=headers)


@dataclass(frozen=True)
class PlatformCall:
    """A platform's command: its tenant, and the request under its Idempotency-Key, if any."""

    tenant: str
    request: Request
    idempotency_key: str | None

    @property
    def actor(self) -> str:
        """Who the command is recorded as: the tenant behind the API key."""
        return f"tenant:{self.tenant}"

    def keyed(self, body: BaseModel | None = None) -> KeyedRequest | None:
        """The request (with `body`) under the tenant's key; None when sent without one."""
        return keyed(self.tenant, self.idempotency_key, self.request, body)

    def by(self, body: BaseModel | None = None) -> dict[str, Any]:
        """What every platform command takes besides its own arguments: the tenant, the
        actor it is recorded as, and the request (with `body`) under its key."""
        return {"tenant": self.tenant, "actor": self.actor, "keyed": self.keyed(body)}


async def _platform_call(  # async: no thread hop for what only reads the request
    tenant: Tenant, request: Request, idempotency_key: IdempotencyKey = None
) -> PlatformCall:
    return PlatformCall(tenant, request, idempotency_key)


PlatformCommand = Annotated[PlatformCall, Depends(_platform_call)]


@dataclass(frozen=True)
class StaffCall(Staff):
    """A staff person's command: who asks, and the request under their Idempotency-Key."""

    request: Request
    idempotency_key: str | None

    def keyed(self, body: BaseModel | None = None) -> KeyedRequest | None:
        """The request (with `body`) among the person's own keys; None when sent without one."""
        return keyed(self.scope, self.idempotency_key, self.request, body)


def staff_command(*roles: str) -> Any:
    """An `Annotated[StaffCall, Depends(...)]` alias: a command of a staff member holding
    one of `roles` (401/403 otherwise), with its optional Idempotency-Key."""
    member = staff_member(*roles)

    def call(
        staff: Annotated[Staff, Depends(member)],
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> StaffCall:
        return StaffCall(staff.sub, staff.roles, request, idempotency_key)

    return Annotated[StaffCall, Depends(call)]
