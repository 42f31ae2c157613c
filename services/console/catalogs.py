"""The console's message catalogs: which strings the templates and pages show, and the
.po files that translate them. `python -m services.console.catalogs --write` adds any new
string to both catalogs (untranslated, for a person to fill in) and drops the ones no page
shows any more; tests/unit/test_console_i18n.py
fails while a shown string is missing or untranslated in either."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from services.console.i18n import DOMAIN, catalog_path
from services.console.pages.audit_range import BACKWARDS, NOT_A_DATE
from services.console.pages.case_forms import AMOUNT_HINT
from services.console.pages.explain import KNOWN_CODES, SERVICE_NAMES
from services.console.vocabulary import LOCALES, NAVIGATION

HERE = Path(__file__).parent


Key = tuple[str, str | None]  # (msgid, context): pgettext's context tells two senses apart


def shown_messages() -> set[Key]:
    """Every (msgid, context) a page can show: `_()`/`pgettext()` in templates and in the
    console's Python, plus the strings the templates translate by value (navigation labels,
    refusal codes)."""
    found: set[Key] = set()

    def add(message: str | tuple[str, ...], context: str | None) -> None:
        for text in [message] if isinstance(message, str) else message:
            if text:
                found.add((text, context))

    for template in sorted((HERE / "templates").rglob("*.html")):
        for _line, message, _notes, context in extract_from_file(
            "jinja2.ext:babel_extract", str(template), options={"extensions": "jinja2.ext.i18n"}
        ):
            add(message, context)
    for module in sorted(HERE.rglob("*.py")):
        for _line, message, _notes, context in extract_from_file("python", str(module)):
            add(message, context)
    for message in (
        *(label for _, label, _ in NAVIGATION),
        *KNOWN_CODES.values(),
        *SERVICE_NAMES.values(),
        AMOUNT_HINT,
        NOT_A_DATE,
        BACKWARDS,
    ):
        add(message, None)
    return found


def shown_strings() -> set[str]:
    """Every msgid a page can show (in any context)."""
    return {message for message, _context in shown_messages()}


def read_catalog(tag: str) -> Catalog:
    with catalog_path(tag).open("rb") as po:
        return read_po(po, locale=LOCALES[tag], domain=DOMAIN)


def _named(message: str, context: str | None) -> str:
    return message if context is None else f"{context}|{message}"


def untranslated(tag: str) -> list[str]:
    """The shown messages missing or untranslated in `tag` (`context|msgid` for one with a
    context)."""
    catalog = read_catalog(tag)
    missing = []
    for message, context in shown_messages():
        entry = catalog.get(message, context=context)
        if entry is None or not entry.string:
            missing.append(_named(message, context))
    return sorted(missing)


def write_missing() -> None:
    wanted = shown_messages()
    for tag in LOCALES:
        path = catalog_path(tag)
        catalog = (
            read_catalog(tag) if path.exists() else Catalog(locale=LOCALES[tag], domain=DOMAIN)
        )
        for message, context in sorted(wanted, key=lambda key: (key[0], key[1] or "")):
            if catalog.get(message, context=context) is None:
                catalog.add(message, message if tag == "en" else "", context=context)
        for gone in [m for m in catalog if m.id and (m.id, m.context) not in wanted]:
            catalog.delete(gone.id, context=gone.context)  # no page shows it any more
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as po:
            write_po(po, catalog, omit_header=False, sort_output=True, width=100)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_missing()
    for tag in LOCALES:
        missing = untranslated(tag)
        print(f"{tag}: {len(missing)} untranslated")
        for message in missing:
            print(f"  {message!r}")
