"""Finance's recovery claims: what liable parties owe back, from review's list of claims
(open first by default; state filter, cursor paging), and the two ways to settle one —
recovered (with the reference of the money received) or written off (with the reason) —
each form sent once, as the person."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.finance_forms import (
    CLAIM_ACTIONS,
    CLAIM_STATES,
    GROUP,
    claim_body,
)
from services.console.pages.gate import allowed, not_yours
from services.console.pages.listing import (
    PAGE_SIZE,
    Cursor,
    Listing,
    list_page,
)
from services.console.pages.sending import form_of, sent

router = APIRouter()
CLAIMS = Listing("review", "/v1/claims", "/finance/claims", "finance/claims.html")
Segment = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


async def _list(
    request: Request,
    calls: Any,
    pages: Pages,
    state: str,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    filters = {"state": state}
    context: dict[str, Any] = {"filters": filters, "states": CLAIM_STATES, "form": form or {}}
    query = {"state": state if state in CLAIM_STATES else None, "limit": PAGE_SIZE}
    cursors = (starting_after, ending_before)
    return await list_page(
        request,
        calls,
        pages,
        CLAIMS,
        query,
        filters,
        cursors,
        status=status,
        problem=problem,
        **context,
    )


@router.get("/finance/claims")
async def claims(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    state: Annotated[str, Query(max_length=20)] = "open",
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    return await _list(request, calls, pages, state, starting_after, ending_before)


@router.post("/finance/claims/{refund_id}/{party}/{action}")
async def settle(
    request: Request,
    refund_id: Segment,
    party: Segment,
    action: Annotated[str, Path(max_length=30)],
    person: SignedIn,
    calls: Calls,
    pages: Pages,
) -> Response:
    """Sends the settlement to review as the person, with the form's own Idempotency-Key (a
    double submit replays the first answer); a refusal shows the list unchanged."""
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    gettext = pages.gettext(request)
    form = await form_of(request)
    shown_state = form.get("state", "open")[:20]
    if action not in CLAIM_ACTIONS:
        return await _list(request, calls, pages, shown_state, status=404)
    path = f"/v1/cases/{refund_id}/claims/{party}/{action}"
    refused = await sent(
        calls, "review", path, form, lambda: claim_body(action, form, gettext), gettext
    )
    if refused:
        status, shown = refused
        return await _list(
            request, calls, pages, shown_state, status=status, problem=shown, form=form
        )
    return RedirectResponse("/finance/claims?" + urlencode({"state": shown_state}), status_code=303)
