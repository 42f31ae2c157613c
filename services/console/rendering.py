"""Pages: Jinja2 templates rendered in the person's language, zone and roles."""

from __future__ import annotations

import secrets
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.console.i18n import Formats, chosen_locale
from services.console.vocabulary import (
    BUILT,
    CSRF_FIELD,
    IDEMPOTENCY_FIELD,
    LOCALE_COOKIE,
    NAVIGATION,
)

TEMPLATES = Path(__file__).parent / "templates"


@cache
def zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class Renderer:
    def __init__(
        self, catalogs: dict[str, Translations], *, default_locale: str, zone: str
    ) -> None:
        self.catalogs = catalogs
        self.default_locale = default_locale
        self.zone = ZoneInfo(zone)
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
        )

    def locale_of(self, request: Request) -> str:
        session = request.scope.get("session") or {}
        return chosen_locale(
            session.get("locale"), request.cookies.get(LOCALE_COOKIE), default=self.default_locale
        )

    def zone_of(self, session: dict[str, Any]) -> ZoneInfo:
        """The person's own zone (their identity provider's `zoneinfo`), else the console's."""
        name = session.get("zone")
        if name:
            try:
                return zone_named(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                pass  # a zone this machine does not know: the console's default
        return self.zone

    def gettext(self, request: Request) -> Any:
        return self.catalogs[self.locale_of(request)].gettext

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        tag = self.locale_of(request)
        translations = self.catalogs[tag]
        session = request.scope.get("session") or {}
        roles = frozenset(session.get("roles") or ())
        navigation = [
            {"path": path, "label": label, "built": path in BUILT}
            for path, label, allowed in NAVIGATION
            if roles & allowed
        ]
        if "csrf" not in session and "session" in request.scope:
            # Every page may hold a form (the language switch at least): its CSRF token.
            request.scope["session"]["csrf"] = secrets.token_urlsafe(32)
            session = request.scope["session"]
        body = self.env.get_template(name).render(
            request=request,
            _=translations.gettext,
            gettext=translations.gettext,
            ngettext=translations.ngettext,
            # A msgid used in two senses (a state and an amount) is told apart by context.
            pgettext=translations.pgettext,
            npgettext=translations.npgettext,
            fmt=Formats(tag, self.zone_of(session)),
            lang=tag,
            person=session.get("name") if session.get("access_token") else None,
            roles=sorted(roles),
            navigation=navigation,
            csrf_field=CSRF_FIELD,
            csrf=session.get("csrf", ""),
            key_field=IDEMPOTENCY_FIELD,
            new_key=lambda: str(uuid.uuid4()),
            **context,
        )
        return HTMLResponse(body, status_code=status)
