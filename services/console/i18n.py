"""Languages: the gettext catalogs (compiled from the committed .po files at start-up, so no
binary .mo is committed) and the per-locale formats of amounts, dates and times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations

from services.console.vocabulary import LOCALES
from shared.money import exponent_of

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "console"
Gettext = Callable[[str], str]  # a person's language: msgid → the text they read


def catalog_path(tag: str) -> Path:
    return LOCALE_DIR / LOCALES[tag] / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalogs() -> dict[str, Translations]:
    """Each language's catalog, compiled in memory from its .po file."""
    compiled: dict[str, Translations] = {}
    for tag in LOCALES:
        with catalog_path(tag).open("rb") as po:
            catalog = read_po(po, locale=LOCALES[tag], domain=DOMAIN)
        mo = BytesIO()
        write_mo(mo, catalog)
        mo.seek(0)
        compiled[tag] = Translations(mo, domain=DOMAIN)
    return compiled


def chosen_locale(*candidates: str | None, default: str) -> str:
    """The first candidate the console speaks (session, cookie, …), else `default`."""
    for candidate in candidates:
        if candidate in LOCALES:
            return candidate
    return default


@cache
def _babel_locale(tag: str) -> Locale:
    """Parsed once per language: `Locale.parse` cost ~0.75 ms a call, three calls a row of
    the queue (amount, date, countdown): about 1.5 of the page's ~7 CPU-ms
    (bench/console_queue.py, pyinstrument)."""
    return Locale.parse(LOCALES[tag])


@dataclass(frozen=True)
class Formats:
    """How one person reads numbers and times: their language and zone."""

    tag: str
    zone: ZoneInfo

    @property
    def babel(self) -> Locale:
        return _babel_locale(self.tag)

    def money(self, minor: int, currency: str) -> str:
        """Minor units shown exactly: Decimal arithmetic, never a float."""
        major = Decimal(int(minor)).scaleb(-exponent_of(currency))
        return format_currency(major, currency, locale=self.babel)

    def major(self, minor: int, currency: str) -> str:
        """The plain decimal a form shows for editing ("2500.00"), never through a float."""
        return str(Decimal(int(minor)).scaleb(-exponent_of(currency)))

    def when(self, at: datetime | str | None) -> str:
        if at is None:
            return ""
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        return format_datetime(moment.astimezone(self.zone), "medium", locale=self.babel)

    def duration(self, seconds: float) -> str:
        return format_timedelta(
            timedelta(seconds=abs(seconds)), threshold=1.0, format="short", locale=self.babel
        )
