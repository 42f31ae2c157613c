"""A service's refusal, told in the person's language: what happened, and each bad field."""

from __future__ import annotations

from typing import Any

from services.console.calls import Refused, Unreachable
from services.console.i18n import Gettext

# The rules and codes review answers with, worded for staff (msgids of the catalogs).
KNOWN_CODES = {
    "duty.second_approver": "The second approval must come from another person.",
    "terms_differ": "A later approval confirms the first approval's amount and coupon.",
    "amount_out_of_range": "The amount must be more than zero and at most the refundable amount.",
    "liability_split": "The liability shares must add up to the amount.",
    "coupon": "A coupon is a positive amount in the refund's currency.",
    "closed": "The case is already decided.",
}

# The services by name, as staff know them (msgids of the catalogs).
SERVICE_NAMES = {"intake": "intake", "review": "review", "payout": "payout", "notify": "notify"}


def _service(name: str, _: Gettext) -> str:
    return _(SERVICE_NAMES[name]) if name in SERVICE_NAMES else name


def field_name(raw: Any) -> str:
    """`body.amount.amount` → `amount.amount`: the form's own name for the field."""
    text = str(raw or "")
    return text.removeprefix("body.").removeprefix("query.")


def explained(error: Refused | Unreachable, _: Gettext) -> dict[str, Any]:
    """What the page shows: a headline and one line per field or rule (with the service's own
    message kept beside, so nothing it said is lost)."""
    if isinstance(error, Unreachable):
        return {
            "headline": _("The %(service)s service did not answer; nothing was changed.")
            % {"service": _service(error.service, _)},
            "lines": [],
        }
    headlines = {
        403: _("The %(service)s service refused this; nothing was changed."),
        404: _("The %(service)s service does not know this."),
        409: _(
            "The %(service)s service refused this in the case's current state; nothing was changed."
        ),
        422: _("Some fields are not valid; nothing was sent."),
    }
    headline = headlines.get(error.status, _("The %(service)s service refused this."))
    lines = []
    for item in error.errors:
        code = str(item.get("code", ""))
        lines.append(
            {
                "field": field_name(item.get("field")),
                "text": _(KNOWN_CODES[code]) if code in KNOWN_CODES else "",
                "code": code,
                "said": str(item.get("message", "")),
            }
        )
    if not lines and error.problem.get("detail"):
        lines.append(
            {"field": "", "text": "", "code": error.kind, "said": str(error.problem["detail"])}
        )
    return {"headline": headline % {"service": _service(error.service, _)}, "lines": lines}


def local_problem(fields: dict[str, str], _: Gettext) -> dict[str, Any]:
    """A form the console refuses before sending it (e.g. an amount it cannot read)."""
    return {
        "headline": _("Some fields are not valid; nothing was sent."),
        "lines": [
            {"field": name, "text": text, "code": "", "said": ""} for name, text in fields.items()
        ],
    }
