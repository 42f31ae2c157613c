"""The case page's forms, turned into the bodies of review's staff API.

Amounts are typed in major units ("2500.00") and read exactly (Decimal, via Money.from_major);
anything the console cannot read is refused before it is sent, naming the field."""

from __future__ import annotations

from typing import Any

from services.console.i18n import Gettext
from shared.money import Money

Form = dict[str, str]

# The console's path segment → review's action (both POST /v1/cases/{id}/<action>).
ACTIONS = ("claim", "release", "approve", "reject", "request-evidence", "escalate", "compensate")


AMOUNT_HINT = "Enter an amount like 129.00, with at most the currency's decimals."


class FormProblem(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def _money(form: Form, name: str, currency: str, _: Gettext, *, required: bool) -> Money | None:
    text = form.get(name, "").strip().replace(",", "")
    if not text:
        if required:
            raise FormProblem({name: _("Enter an amount.")})
        return None
    try:
        return Money.from_major(text, currency)
    except (ValueError, ArithmeticError):
        raise FormProblem({name: _(AMOUNT_HINT)}) from None


def _text(form: Form, name: str, _: Gettext) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise FormProblem({name: _("This field is required.")})
    return value


def body_of(action: str, form: Form, currency: str, _: Gettext) -> dict[str, Any] | None:
    """Review's body for `action` (None: the action takes none); raises FormProblem."""
    if action in ("claim", "release"):
        return None
    if action == "approve":
        amount = _money(form, "amount", currency, _, required=True)
        assert amount is not None
        body: dict[str, Any] = {"amount": amount.as_dict(), "note": form.get("note", "").strip()}
        shares = {
            party: _money(form, f"liability_{party}", currency, _, required=False)
            for party in ("platform", "merchant", "carrier")
        }
        if any(share is not None for share in shares.values()):
            body["liability"] = {p: s.amount if s else 0 for p, s in shares.items()}
        coupon = _money(form, "coupon", currency, _, required=False)
        if coupon is not None:
            body["coupon"] = coupon.as_dict()
        return body
    if action == "reject":
        return {
            "reason_code": _text(form, "reason_code", _),
            "explanation": {
                "zh-CN": _text(form, "explanation_zh", _),
                "en": _text(form, "explanation_en", _),
            },
            # For staff only: review keeps it on the case and never sends it to the customer.
            "internal_note": form.get("internal_note", "").strip(),
        }
    if action == "request-evidence":
        missing = [line.strip() for line in _text(form, "missing", _).splitlines() if line.strip()]
        return {"missing": missing, "message": _text(form, "message", _)}
    if action == "escalate":
        return {"reason": _text(form, "reason", _)}
    if action == "compensate":
        coupon = _money(form, "coupon", currency, _, required=True)
        assert coupon is not None
        return {"coupon": coupon.as_dict(), "note": _text(form, "note", _)}
    raise FormProblem({"action": _("Unknown action.")})
