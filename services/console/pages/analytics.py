"""Refund analytics for finance, auditors and admins: intake's `GET /v1/analytics/refunds`
over the chosen days (in the person's zone), as tables and server-drawn SVG charts."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from babel.numbers import format_percent
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.console.calls import Refused, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.i18n import Formats
from services.console.pages.charts import Chart, bar_chart
from services.console.pages.explain import explained, local_problem
from services.console.pages.gate import refused
from services.console.vocabulary import LOCALES

router = APIRouter()
GROUP = "/analytics"
DEFAULT_DAYS = 30
STAGES = ("submitted_to_decision", "decision_to_paid", "submitted_to_paid")
RETURN_STAGES = ("requested_to_shipped", "delivered_to_received")

DayQuery = Annotated[str, Query(max_length=10)]


def _day(text: str, fallback: date) -> date:
    return date.fromisoformat(text) if text else fallback


def percent(value: float | None, tag: str) -> str:
    return "—" if value is None else format_percent(value, "#,##0.0%", locale=LOCALES[tag])


def charts(found: dict[str, Any], fmt: Formats, _: Any, labels: dict[str, str]) -> list[Chart]:
    """The report's distributions as bar charts (the tables show the same numbers)."""
    by_reason = sorted(found["by_reason"].items(), key=lambda item: -item[1]["count"])
    by_outcome = sorted(found["by_outcome"].items(), key=lambda item: -item[1]["count"])
    stages = [(s, found["stage_durations"][s]) for s in STAGES]
    inspections = sorted(found["returns"]["inspection_outcomes"].items(), key=lambda i: -i[1])
    return [
        bar_chart(
            "reasons",
            _("Refunds by reason"),
            _("How many refunds cited each reason."),
            [(labels.get(k, k), v["count"], str(v["count"])) for k, v in by_reason],
        ),
        bar_chart(
            "outcomes",
            _("Refunds by outcome"),
            _("How many refunds ended in each outcome so far."),
            [(labels.get(k, k), v["count"], str(v["count"])) for k, v in by_outcome],
        ),
        bar_chart(
            "stages",
            _("Median stage durations"),
            _("The median time each stage took."),
            [
                (labels.get(k, k), v["p50_seconds"] or 0, fmt.duration(v["p50_seconds"] or 0))
                for k, v in stages
            ],
        ),
        bar_chart(
            "inspections",
            _("Return inspections by outcome"),
            _("How many returned goods were inspected with each outcome."),
            [(labels.get(k, k), v, str(v)) for k, v in inspections],
        ),
    ]


@router.get("/analytics")
async def analytics(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    start: DayQuery = "",
    end: DayQuery = "",
    tenant: Annotated[str, Query(max_length=63)] = "",
    orders_placed: Annotated[str, Query(max_length=13)] = "",
) -> Response:
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    _ = pages.gettext(request)
    tag = pages.locale_of(request)
    zone = pages.zone
    today = datetime.now(zone).date()
    form = {"start": start, "end": end, "tenant": tenant, "orders_placed": orders_placed}
    bad: dict[str, str] = {}
    first, last = today - timedelta(days=DEFAULT_DAYS - 1), today
    try:
        first = _day(start, first)
    except ValueError:
        bad["start"] = _("Enter a date like 2026-11-01.")
    try:
        last = _day(end, last)
    except ValueError:
        bad["end"] = _("Enter a date like 2026-11-01.")
    if not bad and last < first:
        bad["end"] = _("The last day must not be before the first.")
    if orders_placed and not (orders_placed.isdigit() and int(orders_placed) > 0):
        bad["orders_placed"] = _("Enter a whole number of orders, more than zero.")
    form |= {"start": first.isoformat(), "end": last.isoformat()}
    context: dict[str, Any] = {"form": form, "report": None, "charts": [], "problem": None}
    if bad:
        context["problem"] = local_problem(bad, _)
        return pages.page(request, "analytics/index.html", 422, **context)
    params = {
        "created_after": datetime.combine(first, time.min, zone).isoformat(),
        "created_before": datetime.combine(last + timedelta(days=1), time.min, zone).isoformat(),
        "tenant": tenant or None,
        "orders_placed": orders_placed or None,
    }
    try:
        found = await calls.get("intake", "/v1/analytics/refunds", params)
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        context["problem"] = explained(error, _)
        return pages.page(request, "analytics/index.html", status, **context)
    fmt = Formats(tag, zone)
    labels = {key: _(text) for key, text in LABELS.items()}
    context |= {
        "report": found,
        "charts": charts(found, fmt, _, labels),
        "labels": labels,
        "rates": {
            "refund_rate": percent(found["refund_rate"], tag),
            "automatic_share": percent(found["deciders"]["automatic_share"], tag),
            "return_rate": percent(found["returns"]["return_rate"], tag),
        },
        "stages": STAGES,
        "return_stages": RETURN_STAGES,
    }
    return pages.page(request, "analytics/index.html", **context)


def N_(message: str) -> str:
    """Marks a msgid for the catalogs; translated where it is shown."""
    return message


# Words for the keys intake answers with (msgids of the catalogs).
LABELS = {
    "damaged": N_("Damaged"),
    "quality_defect": N_("Quality defect"),
    "not_received": N_("Not received"),
    "wrong_item": N_("Wrong item"),
    "not_as_described": N_("Not as described"),
    "changed_mind": N_("Changed mind"),
    "service_issue": N_("Service issue"),
    "customer_error": N_("Customer error"),
    "duplicate_charge": N_("Duplicate charge"),
    "special_circumstances": N_("Special circumstances"),
    "other": N_("Other"),
    "open": N_("Open"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "withdrawn": N_("Withdrawn"),
    "paying": N_("Paying"),
    "paid": N_("Paid"),
    "payout_failed": N_("Payout failed"),
    "compensated": N_("Compensated"),
    "submitted_to_decision": N_("Request to decision"),
    "decision_to_paid": N_("Decision to payment"),
    "submitted_to_paid": N_("Request to payment"),
    "requested_to_shipped": N_("Return requested to shipped"),
    "delivered_to_received": N_("Delivered to received"),
    "refund": N_("Refund"),
    "exchange": N_("Exchange"),
    "reviewer": N_("A reviewer decides"),
}
