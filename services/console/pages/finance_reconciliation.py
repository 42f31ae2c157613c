"""Finance's reconciliation: the reports recorded (newest first, cursor paging), a provider's
settlement CSV for a day reconciled through payout, and one report's findings grouped by
mismatch kind. The same file for the same day answers the same report (payout's rule), so a
double submit records one report."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from services.console.calls import Refused, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.i18n import Gettext
from services.console.pages.case_forms import FormProblem
from services.console.pages.explain import explained, local_problem
from services.console.pages.finance_forms import (
    FINDING_KINDS,
    GROUP,
    SETTLEMENT_PROVIDERS,
    grouped,
    reconciliation_body,
)
from services.console.pages.gate import allowed, not_yours
from services.console.pages.listing import (
    PAGE_SIZE,
    Cursor,
    Listing,
    list_page,
    refused_page,
)
from services.console.vocabulary import IDEMPOTENCY_FIELD

router = APIRouter()
REPORTS = Listing(
    "payout", "/v1/reconciliations", "/finance/reconciliations", "finance/reconciliations.html"
)
# Under the console's limit on a whole form (middleware.MAX_FORM_BYTES), with room for the rest.
MAX_SETTLEMENT_BYTES = 900_000
ReportId = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


async def _list(
    request: Request,
    calls: Any,
    pages: Pages,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    context: dict[str, Any] = {"form": form or {}, "providers": SETTLEMENT_PROVIDERS}
    query = {"limit": PAGE_SIZE}
    cursors = (starting_after, ending_before)
    return await list_page(
        request,
        calls,
        pages,
        REPORTS,
        query,
        {},
        cursors,
        status=status,
        problem=problem,
        **context,
    )


@router.get("/finance/reconciliations")
async def reconciliations(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    starting_after: Cursor = None,
    ending_before: Cursor = None,
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    return await _list(request, calls, pages, starting_after, ending_before)


@router.post("/finance/reconciliations")
async def reconcile(request: Request, person: SignedIn, calls: Calls, pages: Pages) -> Response:
    """The day's settlement report, reconciled by payout as the person; a report payout
    cannot read shows on the list page, naming the line, and records nothing."""
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    gettext = pages.gettext(request)
    sent = await request.form(max_files=1)
    form = {k: v for k, v in sent.items() if isinstance(v, str)}
    try:
        uploaded = sent.get("report_file")
        if isinstance(uploaded, UploadFile) and uploaded.filename:
            if form.get("provider", "gateway") in ("", "gateway"):
                form["report"] = await settlement_text(uploaded, gettext)
            else:  # a provider's own file, as its bytes (Alipay's zip or GBK CSV)
                raw = await settlement_bytes(uploaded, gettext)
                form["report_base64"] = base64.b64encode(raw).decode("ascii")
        body = reconciliation_body(form, gettext)
    except FormProblem as problem:
        shown = local_problem(problem.fields, gettext)
        form.pop("report_base64", None)  # never echoed back into the page
        return await _list(request, calls, pages, status=422, problem=shown, form=form)
    form.pop("report_base64", None)
    try:
        report = await calls.post(
            "payout", "/v1/reconciliations", body, key=form.get(IDEMPOTENCY_FIELD) or None
        )
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        shown = explained(error, gettext)
        return await _list(request, calls, pages, status=status, problem=shown, form=form)
    return RedirectResponse(f"/finance/reconciliations/{report['id']}", status_code=303)


async def settlement_text(uploaded: UploadFile, gettext: Gettext) -> str:
    """The uploaded settlement file as text: UTF-8 (a byte-order mark is dropped), at most
    MAX_SETTLEMENT_BYTES; anything else is named on the form and nothing is sent."""
    raw = await settlement_bytes(uploaded, gettext)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormProblem({"report_file": gettext("The file is not UTF-8 text.")}) from None


async def settlement_bytes(uploaded: UploadFile, gettext: Gettext) -> bytes:
    """The uploaded file's bytes, at most MAX_SETTLEMENT_BYTES (named on the form if more)."""
    raw = await uploaded.read(MAX_SETTLEMENT_BYTES + 1)
    await uploaded.close()
    if len(raw) > MAX_SETTLEMENT_BYTES:
        raise FormProblem({"report_file": gettext("The file is larger than 900 KB.")})
    return raw


@router.get("/finance/reconciliations/{report_id}")
async def report_page(
    request: Request, report_id: ReportId, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    if not allowed(person.roles, GROUP):
        return not_yours(request, pages)
    try:
        report = await calls.get("payout", f"/v1/reconciliations/{report_id}")
    except (Refused, Unreachable) as error:
        return refused_page(request, pages, "problem.html", error)
    return pages.page(
        request,
        "finance/reconciliation.html",
        report=report,
        groups=grouped(report.get("findings") or []),
        kinds=FINDING_KINDS,
    )
