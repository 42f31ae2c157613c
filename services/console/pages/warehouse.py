"""The warehouse: review's returns (filters, soonest due or newest first, cursor paging), one
return (RMA, items, deadlines with countdowns, the carrier's trail, every step and who took
it) and the receipt form, recorded under the person's name once per form."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from services.console.calls import Refused, Services, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.gate import allowed, not_yours
from services.console.pages.listing import PAGE_SIZE, Cursor, Listing, list_page, refused_page
from services.console.pages.sending import form_of, sent
from services.console.pages.warehouse_forms import (
    CARRIERS,
    CONDITIONS,
    FILTERS,
    STATES,
    countdown,
    receipt_body,
    returns_query,
)

router = APIRouter()
RETURNS = Listing("review", "/v1/returns", "/warehouse", "warehouse/list.html", "refund_id")
GROUP = "/warehouse"
RefundId = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/warehouse")
async def returns_list(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    filters = {name: request.query_params.get(name, "")[:40] for name in FILTERS}
    now = datetime.now(UTC)
    params = {**returns_query(filters), "limit": PAGE_SIZE}
    context: dict[str, Any] = {"filters": filters, "states": STATES, "carriers": CARRIERS}

    def shown(entry: dict[str, Any]) -> dict[str, Any]:
        running = entry["state"] in RUNNING
        return {**entry, "clock": countdown(entry.get("due"), now, running=running)}

    cursors = (starting_after, ending_before)
    return await list_page(
        request, calls, pages, RETURNS, params, filters, cursors, each=shown, **context
    )


# The states whose deadline is running (ship-by while awaited, receipt-by once delivered).
RUNNING = frozenset({"awaiting_return", "delivered"})


async def _show(
    request: Request,
    calls: Services,
    pages: Pages,
    refund_id: str,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    try:
        found = await calls.get("review", f"/v1/returns/{refund_id}")
    except (Refused, Unreachable) as error:
        return refused_page(request, pages, "problem.html", error)
    now = datetime.now(UTC)
    state = found["state"]
    clocks = {
        "ship_by": countdown(found.get("ship_by"), now, running=state == "awaiting_return"),
        "receipt_by": countdown(found.get("receipt_by"), now, running=state == "delivered"),
    }
    return pages.page(
        request,
        "warehouse/return.html",
        status,
        entry=found,
        clocks=clocks,
        conditions=CONDITIONS,
        problem=problem,
        form=form or {},
    )


@router.get("/warehouse/{refund_id}")
async def return_page(
    request: Request, refund_id: RefundId, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    return await _show(request, calls, pages, refund_id)


@router.post("/warehouse/{refund_id}/receipt")
async def receipt(
    request: Request, refund_id: RefundId, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    """Sends what came back to review as the person, with the form's own Idempotency-Key (a
    double submit replays the first answer); a refusal shows the return unchanged."""
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    gettext = pages.gettext(request)
    form = await form_of(request)
    path = f"/v1/returns/{refund_id}/receipt"
    refused = await sent(calls, "review", path, form, lambda: receipt_body(form, gettext), gettext)
    if refused:
        status, shown = refused
        return await _show(request, calls, pages, refund_id, status, shown, form)
    return RedirectResponse(f"/warehouse/{refund_id}", status_code=303)
