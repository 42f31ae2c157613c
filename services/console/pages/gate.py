"""Which page groups a person's roles open: the roles the navigation lists for a group. The
services enforce their own rules on every call; this only spares a person a page of their
refusals, saying at once that the page is not theirs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from services.console.deps import Person
from services.console.rendering import Renderer
from services.console.vocabulary import NAVIGATION

GROUP_ROLES = {path: roles for path, _label, roles in NAVIGATION}


def allowed(roles: frozenset[str], group: str) -> bool:
    return bool(roles & GROUP_ROLES[group])


def not_yours(request: Request, pages: Renderer) -> Response:
    """The 403 page for a person whose roles do not open the page (nothing was asked of any
    service)."""
    gettext: Any = pages.gettext(request)
    shown = {"headline": gettext("Your roles do not open this page."), "lines": []}
    return pages.page(request, "problem.html", 403, problem=shown)


def refused(person: Person, group: str, request: Request, pages: Renderer) -> Response | None:
    """The 403 page when the person's roles do not open the group; None when they do."""
    return None if allowed(person.roles, group) else not_yours(request, pages)
