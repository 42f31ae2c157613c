"""One case: its facts, evidence, the policy's trail, approvals and what is still needed,
history, and the actions a reviewer takes on it (each form with its own Idempotency-Key)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from services.console.calls import Refused, Services, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.auth import local_path
from services.console.pages.case_forms import ACTIONS, body_of
from services.console.pages.explain import explained
from services.console.pages.listing import refused_page
from services.console.pages.sending import form_of, sent
from services.console.vocabulary import REJECTION_REASONS, RETURN_STATES

router = APIRouter()
RefundId = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


async def _show(
    request: Request,
    calls: Services,
    pages: Pages,
    refund_id: str,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    gettext = pages.gettext(request)
    try:
        case = await calls.get("review", f"/v1/cases/{refund_id}")
    except (Refused, Unreachable) as error:
        return refused_page(request, pages, "problem.html", error)
    refund, refund_problem = await _refund(calls, refund_id, gettext)
    return pages.page(
        request,
        "case.html",
        status,
        case=case,
        refund=refund,
        refund_problem=refund_problem,
        order_lines=order_lines(refund),
        problem=problem,
        form=form or {},
        reasons=REJECTION_REASONS,
        return_states=RETURN_STATES,
        here=f"/cases/{refund_id}",
    )


async def _refund(
    calls: Services, refund_id: str, gettext: Any
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Intake's staff view of the refund (order, lines, the customer's contact), or why the
    page shows the case without it: review's case is still worth deciding on."""
    try:
        return await calls.get("intake", f"/v1/staff/refunds/{refund_id}"), None
    except (Refused, Unreachable) as error:
        return None, explained(error, gettext)


def order_lines(refund: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The order's lines, each with how many of it this refund asks for (0: not asked)."""
    if refund is None:
        return []
    asked: dict[str, int] = {}
    for item in refund.get("items") or []:
        asked[item["sku"]] = asked.get(item["sku"], 0) + int(item["quantity"])
    return [
        {**line, "refunded": asked.get(line["sku"], 0)}
        for line in refund.get("order", {}).get("lines", [])
    ]


@router.get("/cases/{refund_id}")
async def case_page(
    request: Request, refund_id: RefundId, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    return await _show(request, calls, pages, refund_id)


async def _next_case(calls: Services, after: str) -> str:
    """Submit-and-next: the newest pending case other than this one, or the queue."""
    try:
        found = await calls.get("review", "/v1/cases", {"state": "pending", "limit": 20})
    except (Refused, Unreachable):
        return "/queue"
    others = [e["refund_id"] for e in found["data"] if e["refund_id"] != after]
    return f"/cases/{others[0]}" if others else "/queue"


@router.post("/cases/{refund_id}/{action}")
async def act(
    request: Request,
    refund_id: RefundId,
    action: Annotated[str, Path(max_length=30)],
    person: SignedIn,
    calls: Calls,
    pages: Pages,
) -> Response:
    """Sends the form to review as the person, with the form's own Idempotency-Key (a double
    submit replays the first answer); a refusal shows the case unchanged, saying why."""
    gettext = pages.gettext(request)
    if action not in ACTIONS:
        return await _show(request, calls, pages, refund_id, 404)
    form = await form_of(request)
    refused = await sent(
        calls,
        "review",
        f"/v1/cases/{refund_id}/{action}",
        form,
        lambda: body_of(action, form, form.get("currency", "CNY"), gettext),
        gettext,
    )
    if refused:
        status, shown = refused
        return await _show(request, calls, pages, refund_id, status, shown, form)
    then = form.get("then", "")
    if then == "next":
        target = await _next_case(calls, refund_id)
    elif then:
        target = local_path(then)
    else:
        target = f"/cases/{refund_id}"
    return RedirectResponse(target, status_code=303)
