"""Finance's forms, turned into the bodies of payout's and review's staff APIs; anything the
console can tell is missing is refused before it is sent, naming the field."""

from __future__ import annotations

import re
from typing import Any

from services.console.i18n import Gettext
from services.console.pages.case_forms import FormProblem

Form = dict[str, str]

GROUP = "/finance"
# The console's path segment → payout's action (both POST /v1/payouts/{id}/<action>).
PAYOUT_ACTIONS = ("retry", "switch-to-store-balance", "manual-payment")
# The console's path segment → review's settlement of a claim (…/claims/{party}/<action>).
CLAIM_ACTIONS = ("recover", "write-off")
PAYOUT_STATUSES = ("failed", "pending", "processing", "paid", "cancelled")
CLAIM_STATES = ("open", "recovered", "written_off")
FINDING_KINDS = (
    "missing_on_our_side",
    "missing_at_provider",
    "amount_differs",
    "status_differs",
    "matched",
)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _required(form: Form, name: str, _: Gettext) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise FormProblem({name: _("This field is required.")})
    return value


def payout_body(action: str, form: Form, _: Gettext) -> dict[str, Any] | None:
    """Payout's body for `action` (None: retry takes none); raises FormProblem."""
    if action == "retry":
        return None
    if action == "switch-to-store-balance":
        return {"consent_reference": _required(form, "consent_reference", _)}
    if action == "manual-payment":
        body = {"reference": _required(form, "reference", _)}
        note = form.get("note", "").strip()
        return {**body, "note": note} if note else body
    raise FormProblem({"action": _("Unknown action.")})


def claim_body(action: str, form: Form, _: Gettext) -> dict[str, Any]:
    """Review's body for settling a claim: the reference of the money received, or the
    reason it will not be."""
    if action == "recover":
        return {"reference": _required(form, "reference", _)}
    if action == "write-off":
        return {"reason": _required(form, "reason", _)}
    raise FormProblem({"action": _("Unknown action.")})


def reconciliation_body(form: Form, _: Gettext) -> dict[str, Any]:
    """Payout's reconciliation body: the settlement day and the report's CSV text."""
    day = _required(form, "day", _)
    if not DAY.match(day):
        raise FormProblem({"day": _("Enter a day like 2026-11-20.")})
    report = form.get("report", "").replace("\r\n", "\n")
    if not report.strip():
        raise FormProblem({"report": _("Choose the settlement file, or paste its CSV.")})
    return {"day": day, "report": report}


def grouped(findings: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """A report's findings by kind, mismatches first (kinds without findings left out)."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        by_kind.setdefault(str(finding.get("kind", "")), []).append(finding)
    known = [(kind, by_kind.pop(kind)) for kind in FINDING_KINDS if kind in by_kind]
    return known + sorted(by_kind.items())
