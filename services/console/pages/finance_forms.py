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
PAYOUT_ACTIONS = ("retry", "switch-to-store-balance", "manual-payment", "abnormal-refund")
ABNORMAL_TARGETS = ("MERCHANT_BANK_CARD", "USER_BANK_CARD")
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
# Whose settlement file: the sandbox gateway's, or a tenant's own account at a provider.
SETTLEMENT_PROVIDERS = ("gateway", "stripe", "alipay", "wechatpay")
TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


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
    if action == "abnormal-refund":
        return abnormal_refund_body(form, _)
    raise FormProblem({"action": _("Unknown action.")})


def abnormal_refund_body(form: Form, _: Gettext) -> dict[str, Any]:
    """WeChat Pay's abnormal refund: the merchant's card, or the payer's with its bank type,
    number and holder (passed on to payout, never kept by the console)."""
    target = form.get("type", "")
    if target not in ABNORMAL_TARGETS:
        raise FormProblem({"type": _("Choose whose bank card.")})
    if target == "MERCHANT_BANK_CARD":
        return {"type": target}
    return {
        "type": target,
        "bank_type": _required(form, "bank_type", _),
        "bank_account": _required(form, "bank_account", _).replace(" ", ""),
        "real_name": _required(form, "real_name", _),
    }


def claim_body(action: str, form: Form, _: Gettext) -> dict[str, Any]:
    """Review's body for settling a claim: the reference of the money received, or the
    reason it will not be."""
    if action == "recover":
        return {"reference": _required(form, "reference", _)}
    if action == "write-off":
        return {"reason": _required(form, "reason", _)}
    raise FormProblem({"action": _("Unknown action.")})


def reconciliation_body(form: Form, _: Gettext) -> dict[str, Any]:
    """Payout's reconciliation body: the settlement day, whose file (provider, tenant) and
    the report: the uploaded file's bytes (`report_base64`, as the console received them:
    Alipay's zip or GBK CSV) or the pasted CSV text."""
    day = _required(form, "day", _)
    if not DAY.match(day):
        raise FormProblem({"day": _("Enter a day like 2026-11-20.")})
    provider = form.get("provider", "gateway") or "gateway"
    if provider not in SETTLEMENT_PROVIDERS:
        raise FormProblem({"provider": _("Choose the provider.")})
    body: dict[str, Any] = {"day": day, "provider": provider}
    tenant = form.get("tenant", "").strip()
    if provider != "gateway":
        if not TENANT.match(tenant):
            raise FormProblem({"tenant": _("Name the tenant whose account the file is of.")})
        body["tenant"] = tenant
    if form.get("report_base64"):
        return {**body, "report_base64": form["report_base64"]}
    report = form.get("report", "").replace("\r\n", "\n")
    if not report.strip():
        raise FormProblem({"report": _("Choose the settlement file, or paste its CSV.")})
    return {**body, "report": report}


def grouped(findings: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """A report's findings by kind, mismatches first (kinds without findings left out)."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        by_kind.setdefault(str(finding.get("kind", "")), []).append(finding)
    known = [(kind, by_kind.pop(kind)) for kind in FINDING_KINDS if kind in by_kind]
    return known + sorted(by_kind.items())
