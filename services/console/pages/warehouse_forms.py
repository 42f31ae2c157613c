"""The warehouse pages' forms, turned into review's query and bodies.

The receipt form names its fields as review names them (`items.0.quantity`, …), so a field
review refuses and a field the console cannot read are named the same way on the page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.console.i18n import Gettext
from services.console.pages.case_forms import FormProblem

Form = dict[str, str]

FILTERS = ("state", "overdue", "carrier", "sort")
# What the warehouse waits for, then what has arrived: the states it filters by first.
STATES = ("awaiting_return", "in_transit", "delivered", "with_reviewer", "received", "paid")
CARRIERS = ("shunfeng", "yuantong", "zhongtong", "yunda", "jd", "ems")
CONDITIONS = ("as_expected", "damaged_by_customer", "wrong_item", "missing_parts")
SOON_SECONDS = 24 * 3600  # under a day left: the countdown turns amber
MAX_ITEMS = 100


def returns_query(filters: dict[str, str]) -> dict[str, Any]:
    """Review's query parameters for the list's filters (review filters, sorts and pages)."""
    overdue = {"yes": "true", "no": "false"}.get(filters.get("overdue", ""))
    return {
        "state": filters.get("state") if filters.get("state") in STATES else None,
        "carrier": filters.get("carrier") if filters.get("carrier") in CARRIERS else None,
        "overdue": overdue,
        "order": "due" if filters.get("sort") == "due" else None,
    }


def countdown(due: str | None, now: datetime, *, running: bool = True) -> dict[str, Any]:
    """A deadline's countdown: CSS class by urgency and the seconds left (negative: late)."""
    if due is None or not running:
        return {"urgency": "sla-paused", "seconds": None}
    left = (datetime.fromisoformat(due) - now).total_seconds()
    urgency = "sla-late" if left < 0 else "sla-soon" if left < SOON_SECONDS else "sla-ok"
    return {"urgency": urgency, "seconds": left}


def receipt_body(form: Form, _: Gettext) -> dict[str, Any]:
    """Review's receipt body: one line per item of the form (`items.N.sku`, in the page's
    order); raises FormProblem naming a quantity that is not a whole number."""
    lines = []
    problems: dict[str, str] = {}
    for n in range(MAX_ITEMS):
        name = f"items.{n}"
        sku = form.get(f"{name}.sku", "")
        if not sku:
            break
        text = form.get(f"{name}.quantity", "").strip()
        if not text.isdigit():
            problems[f"{name}.quantity"] = _("Enter a whole number of units, 0 or more.")
            continue
        photos = [p.strip() for p in form.get(f"{name}.photos", "").splitlines() if p.strip()]
        lines.append(
            {
                "sku": sku,
                "quantity": int(text),
                "condition": form.get(f"{name}.condition", ""),
                "heavy_damage": form.get(f"{name}.heavy_damage") == "yes",
                "photos": photos,
            }
        )
    if problems:
        raise FormProblem(problems)
    return {"items": lines, "note": form.get("note", "").strip()}
