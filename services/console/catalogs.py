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


def shown_strings() -> set[str]:
    """Every msgid a page can show: `_()` in templates and in the console's Python, plus the
    strings the templates translate by value (navigation labels, refusal codes)."""
    found: set[str] = set()
    for template in sorted((HERE / "templates").rglob("*.html")):
        for _line, message, _notes, _context in extract_from_file(
            "jinja2.ext:babel_extract", str(template), options={"extensions": "jinja2.ext.i18n"}
        ):
            found.update([message] if isinstance(message, str) else message)
    for module in sorted(HERE.rglob("*.py")):
        for _line, message, _notes, _context in extract_from_file("python", str(module)):
            found.update([message] if isinstance(message, str) else message)
    found.update(label for _, label, _ in NAVIGATION)
    found.update(KNOWN_CODES.values())
    found.update(SERVICE_NAMES.values())
    found.update((AMOUNT_HINT, NOT_A_DATE, BACKWARDS))
    return {message for message in found if message}


def read_catalog(tag: str) -> Catalog:
    with catalog_path(tag).open("rb") as po:
        return read_po(po, locale=LOCALES[tag], domain=DOMAIN)


def untranslated(tag: str) -> list[str]:
    catalog = read_catalog(tag)
    return sorted(
        message
        for message in shown_strings()
        if message not in catalog or not catalog[message].string
    )


def write_missing() -> None:
    wanted = shown_strings()
    for tag in LOCALES:
        path = catalog_path(tag)
        catalog = (
            read_catalog(tag) if path.exists() else Catalog(locale=LOCALES[tag], domain=DOMAIN)
        )
        for message in sorted(wanted):
            if message not in catalog:
                catalog.add(message, message if tag == "en" else "")
        for gone in [m.id for m in catalog if m.id and m.id not in wanted]:
            del catalog[gone]  # no page shows it any more
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
