"""The reviewer queue: review's GET /v1/cases with the person's filters, the SLA clock of
each case, sorting (newest or soonest due), cursor paging and saved views (kept per person
in the session store)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.calls import Refused, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.case_forms import AMOUNT_HINT, FormProblem
from services.console.pages.explain import explained, local_problem
from services.console.pages.listing import PAGE_SIZE, paging_links
from shared.money import Money

router = APIRouter()

FILTERS = ("tier", "state", "assignee", "overdue", "sort", "reason", "currency", "min", "max")
SOON_SECONDS = 4 * 3600  # under four hours left: the countdown turns amber
MAX_VIEWS = 20
VIEWS_KEPT_SECONDS = 400 * 24 * 3600


# Saved views belong to the person, not to one sign-in: kept in the session store under a key
# no session cookie can name (cookies are random URL-safe ids; this has a colon).
def _views_key(person_sub: str) -> str:
    return f"views:{person_sub}"


async def saved_views(request: Request, person_sub: str) -> dict[str, dict[str, str]]:
    found = await asyncio.to_thread(request.app.state.sessions.load, _views_key(person_sub))
    return dict(found or {})


async def keep_views(request: Request, person_sub: str, views: dict[str, Any]) -> None:
    await asyncio.to_thread(
        request.app.state.sessions.save, _views_key(person_sub), views, VIEWS_KEPT_SECONDS
    )


def sla(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The countdown of one case: CSS class by urgency and the seconds left (negative: late)."""
    if entry.get("deadline") is None or entry.get("state") != "pending":
        return {"urgency": "sla-paused", "seconds": None}
    left = (datetime.fromisoformat(entry["deadline"]) - now).total_seconds()
    urgency = "sla-late" if left < 0 else "sla-soon" if left < SOON_SECONDS else "sla-ok"
    return {"urgency": urgency, "seconds": left}


def review_query(filters: dict[str, str], username: str) -> dict[str, Any]:
    """Review's query parameters for the page's filters (`assignee=me`: the person; amounts
    typed in major units of `currency`, CNY unless chosen; review sorts and pages). Raises
    FormProblem naming an amount it cannot read."""
    assignee = filters.get("assignee") or None
    overdue = {"yes": "true", "no": "false"}.get(filters.get("overdue", ""))
    currency = filters.get("currency") or "CNY"
    bounds = {}
    for name, param in (("min", "min_amount"), ("max", "max_amount")):
        text = filters.get(name, "").strip()
        if text:
            try:
                bounds[param] = Money.from_major(text, currency).amount
            except (ValueError, ArithmeticError):
                raise FormProblem({name: "amount"}) from None
    return {
        "tier": filters.get("tier") or None,
        "state": filters.get("state") or None,
        "assignee": username if assignee == "me" else assignee,
        "overdue": overdue,
        "reason": filters.get("reason") or None,
        "currency": currency if bounds or filters.get("currency") else None,
        "order": "due" if filters.get("sort") == "deadline" else None,
        **bounds,
    }


@router.get("/queue")
async def queue(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    view: Annotated[str | None, Query(max_length=40)] = None,
    starting_after: Annotated[str | None, Query(max_length=100)] = None,
    ending_before: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    views = await saved_views(request, person.sub)
    if view and view in views:
        filters = dict(views[view])
    else:
        filters = {name: request.query_params.get(name, "")[:100] for name in FILTERS}
    now = datetime.now(UTC)
    gettext = pages.gettext(request)
    try:
        params = {
            **review_query(filters, person.username),
            "limit": PAGE_SIZE,
            "starting_after": starting_after,
            "ending_before": ending_before,
        }
        found = await calls.get("review", "/v1/cases", params)
    except (Refused, Unreachable, FormProblem) as error:
        if isinstance(error, FormProblem):
            status = 422
            shown = local_problem({name: gettext(AMOUNT_HINT) for name in error.fields}, gettext)
        else:
            status = error.status if isinstance(error, Refused) else 502
            shown = explained(error, gettext)
        return pages.page(
            request,
            "queue.html",
            status,
            problem=shown,
            entries=[],
            filters=filters,
            views=views,
            paging={},
            now=now,
        )
    entries = [{**entry, "sla": sla(entry, now)} for entry in found["data"]]
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return pages.page(
        request,
        "queue.html",
        entries=entries,
        filters=filters,
        views=views,
        paging=paging_links(
            "/queue", found, filters, starting_after, ending_before, key="refund_id"
        ),
        now=now,
        problem=None,
        back=here,
    )


@router.post("/queue/views")
async def save_view(
    request: Request,
    person: SignedIn,
    name: Annotated[str, Form(min_length=1, max_length=40)],
    tier: Annotated[str, Form(max_length=20)] = "",
    state: Annotated[str, Form(max_length=40)] = "",
    assignee: Annotated[str, Form(max_length=100)] = "",
    overdue: Annotated[str, Form(max_length=5)] = "",
    sort: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=60)] = "",
    currency: Annotated[str, Form(max_length=3)] = "",
    min: Annotated[str, Form(max_length=30)] = "",
    max: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    """A saved view is the queue's filters under a name, for this person (in their session)."""
    views = await saved_views(request, person.sub)
    if name in views or len(views) < MAX_VIEWS:
        views[name.strip()] = {
            "tier": tier,
            "state": state,
            "assignee": assignee,
            "overdue": overdue,
            "sort": sort,
            "reason": reason,
            "currency": currency,
            "min": min,
            "max": max,
        }
    await keep_views(request, person.sub, views)
    return RedirectResponse("/queue?" + urlencode({"view": name.strip()}), status_code=303)


@router.post("/queue/views/delete")
async def delete_view(
    request: Request, person: SignedIn, name: Annotated[str, Form(max_length=40)]
) -> Response:
    views = await saved_views(request, person.sub)
    views.pop(name, None)
    await keep_views(request, person.sub, views)
    return RedirectResponse("/queue", status_code=303)
