"""What intake's routes depend on: the application, its read models, the caller, the settings.

The composition root (bootstrap.py) puts each object on `http.state`; routes declare
the aliases below and never build or look up one themselves.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import BaseModel

from services.intake.analytics import RefundFacts
from services.intake.application import IntakeApplication
from services.intake.index import RefundIndex
from services.intake.settings import IntakeSettings
from shared.auth import ApiKeys
from shared.keyed import IdempotencyKey, keyed
from shared.paging import cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES


def _state(name: str) -> Callable[[Request], Any]:
    """A dependency answering what the composition root put on `http.state` as `name`."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = name
    return get


IntakeApp = Annotated[IntakeApplication, Depends(_state("intake"))]
Index = Annotated[RefundIndex, Depends(_state("index"))]
Facts = Annotated[RefundFacts, Depends(_state("facts"))]
Settings = Annotated[IntakeSettings, Depends(_state("settings"))]
# Intake's list: 10 refunds a page, newest first, both ways.
RefundPaging = cursor_paging(default_limit=10, item="refund", backwards=True)


def _tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The platform behind the API key (a 401 problem without a valid one)."""
    keys: ApiKeys = request.app.state.api_keys
    return keys.tenant_for(authorization)


Tenant = Annotated[str, Depends(_tenant)]


@dataclass(frozen=True)
class PlatformCommand:
    """A platform's command: its tenant, and the request under its Idempotency-Key."""

    tenant: str
    idempotency_key: str | None
    request: Request

    def by(self, body: BaseModel | None) -> dict[str, Any]:
        """What every platform command takes besides its own arguments: the tenant, the
        actor it is recorded as, and the request (with `body`) under its key."""
        return {
            "tenant": self.tenant,
            "actor": f"tenant:{self.tenant}",
            "keyed": keyed(self.tenant, self.idempotency_key, self.request, body),
        }


def _command(
    tenant: Tenant, request: Request, idempotency_key: IdempotencyKey = None
) -> PlatformCommand:
    return PlatformCommand(tenant, idempotency_key, request)


Command = Annotated[PlatformCommand, Depends(_command)]


def staff_with(*roles: str) -> Any:
    """An alias for the staff member behind the request's token, holding one of `roles`
    (a 401 problem without a valid token, 403 without the role)."""
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown:
        raise ValueError(f"unknown staff roles {unknown}; known: {list(STAFF_ROLES)}")

    def staff_member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.dependency(*roles)(credentials)

    return Annotated[Staff, Depends(staff_member)]


Auditor = staff_with("auditor", "admin")
Admin = staff_with("admin")  # only an admin erases a customer's personal data
