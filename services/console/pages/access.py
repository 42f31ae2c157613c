"""Which roles may open a page group, checked by the console before it asks a service (the
service checks again: this only spares the person a page of refusals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from services.console.deps import Person
from services.console.rendering import Renderer
from services.console.vocabulary import NAVIGATION


def roles_of(group: str) -> frozenset[str]:
    """The roles `vocabulary.NAVIGATION` shows the group to."""
    return next(roles for path, _, roles in NAVIGATION if path == group)


def refused(person: Person, group: str, request: Request, pages: Renderer) -> Response | None:
    """A 403 page when the person's roles do not include one the group allows; else None."""
    if person.roles & roles_of(group):
        return None
    _: Callable[[str], Any] = pages.gettext(request)
    problem = {"headline": _("Your role does not allow this page."), "lines": []}
    return pages.page(request, "problem.html", 403, problem=problem)
