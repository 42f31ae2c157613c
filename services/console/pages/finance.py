"""Finance's payouts: failed payouts first, then every payout (status filter, cursor paging);
one payout (attempts, dispatches, provider references, the FX record, who did what) and
finance's actions on a failed one: retry, switch to store balance (with the customer's
consent reference), record a manual payment. Each form is sent once, as the person."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.calls import Refused, Services, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.finance_forms import (
    GROUP,
    PAYOUT_ACTIONS,
    PAYOUT_STATUSES,
    payout_body,
)
from services.console.pages.gate import allowed, not_yours
from services.console.pages.listing import PAGE_SIZE, Cursor, paging_links, refused_page
from services.console.pages.sending import form_of, sent

router = APIRouter()
FAILED_SHOWN = 50  # failed payouts listed first, on every page of the list
PayoutId = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/finance")
async def payouts(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    status: Annotated[str, Query(max_length=20)] = "",
    refund_id: Annotated[str, Query(max_length=100)] = "",
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    filters = {"status": status if status in PAYOUT_STATUSES else "", "refund_id": refund_id}
    context: dict[str, Any] = {"filters": filters, "statuses": PAYOUT_STATUSES}
    try:
        failed = await calls.get(
            "payout", "/v1/payouts", {"status": "failed", "limit": FAILED_SHOWN}
        )
        found = await calls.get(
            "payout",
            "/v1/payouts",
            {
                **filters,
                "limit": PAGE_SIZE,
                "starting_after": starting_after,
                "ending_before": ending_before,
            },
        )
    except (Refused, Unreachable) as error:
        empty: dict[str, Any] = {"failed": [], "entries": [], "paging": {}}
        return refused_page(request, pages, "finance/payouts.html", error, **empty, **context)
    return pages.page(
        request,
        "finance/payouts.html",
        problem=None,
        failed=failed["data"],
        more_failed=failed["has_more"],
        entries=found["data"],
        paging=paging_links("/finance", found, filters, starting_after, ending_before),
        **context,
    )


async def _show(
    request: Request,
    calls: Services,
    pages: Pages,
    payout_id: str,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    try:
        payout = await calls.get("payout", f"/v1/payouts/{payout_id}")
    except (Refused, Unreachable) as error:
        return refused_page(request, pages, "problem.html", error)
    return pages.page(
        request, "finance/payout.html", status, payout=payout, problem=problem, form=form or {}
    )


@router.get("/finance/payouts/{payout_id}")
async def payout_page(
    request: Request, payout_id: PayoutId, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    return await _show(request, calls, pages, payout_id)


@router.post("/finance/payouts/{payout_id}/{action}")
async def payout_action(
    request: Request,
    payout_id: PayoutId,
    action: Annotated[str, Path(max_length=30)],
    person: SignedIn,
    calls: Calls,
    pages: Pages,
) -> Response:
    """Sends the form to payout as the person, with the form's own Idempotency-Key (a double
    submit replays the first answer); a refusal shows the payout unchanged, saying why."""
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    if action not in PAYOUT_ACTIONS:
        return await _show(request, calls, pages, payout_id, 404)
    gettext = pages.gettext(request)
    form = await form_of(request)
    path = f"/v1/payouts/{payout_id}/{action}"
    refused = await sent(
        calls, "payout", path, form, lambda: payout_body(action, form, gettext), gettext
    )
    if refused:
        status, shown = refused
        return await _show(request, calls, pages, payout_id, status, shown, form)
    return RedirectResponse(f"/finance/payouts/{payout_id}", status_code=303)
