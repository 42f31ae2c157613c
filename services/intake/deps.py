"""What intake's routes depend on: the application, its read models, the caller, the settings.

The composition root (bootstrap.py) puts each object on `http.state`; routes declare
the aliases below and never build or look up one themselves.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from services.intake.analytics import RefundFacts
from services.intake.application import IntakeApplication
from services.intake.index import RefundIndex
from services.intake.settings import IntakeSettings
from shared.auth import ApiKeys
from shared.paging import cursor_paging
from shared.staff import Credentials, Staff, StaffAuth
from shared.staff_tokens import STAFF_ROLES


def _intake(request: Request) -> IntakeApplication:
    app: IntakeApplication = request.app.state.intake
    return app


def _index(request: Request) -> RefundIndex:
    index: RefundIndex = request.app.state.index
    return index


def _facts(request: Request) -> RefundFacts:
    facts: RefundFacts = request.app.state.facts
    return facts


def _settings(request: Request) -> IntakeSettings:
    settings: IntakeSettings = request.app.state.settings
    return settings


def _tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The platform behind the API key (a 401 problem without a valid one)."""
    keys: ApiKeys = request.app.state.api_keys
    return keys.tenant_for(authorization)


IntakeApp = Annotated[IntakeApplication, Depends(_intake)]
Index = Annotated[RefundIndex, Depends(_index)]
Facts = Annotated[RefundFacts, Depends(_facts)]
Settings = Annotated[IntakeSettings, Depends(_settings)]
Tenant = Annotated[str, Depends(_tenant)]
# Intake's list: 10 refunds a page, newest first, both ways.
RefundPaging = cursor_paging(default_limit=10, item="refund", backwards=True)


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
