"""Payout's staff API for reconciliation: reconcile the provider's settlement report of a day
(finance), and read the reports recorded (finance, auditors)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.payout.deps import (
    Finance,
    PayoutApp,
    Reader,
    ReconciliationPaging,
    Reconciliations,
    ReportId,
)
from services.payout.reconcile import MalformedReport
from services.payout.schemas import ReconciliationList, ReconciliationRequest, ReconciliationView
from services.payout.views import reconciliation_entry, reconciliation_view
from shared.keyed import answer
from shared.problems import invalid, problem_response, problem_responses
from shared.staff import staff_problem_responses

# Every route is staff's (401 without a valid token, 403 without the role).
router = APIRouter(
    prefix="/v1", tags=["reconciliation"], responses=staff_problem_responses(401, 403)
)


@router.post(
    "/reconciliations",
    response_model=ReconciliationView,
    status_code=201,
    summary="Reconcile the provider's settlement report of a day",
    responses={
        200: {
            "description": "This file was reconciled for this day before: the same report",
            "model": ReconciliationView,
        },
        422: problem_response(
            422,
            "The body is invalid, or the file cannot be read in the provider's format"
            " (`errors` names the line and the problem).",
        ),
    },
)
async def reconcile(body: ReconciliationRequest, staff: Finance, app: PayoutApp) -> JSONResponse:
    """One finding per report line (matched, missing_on_our_side, amount_differs,
    status_differs) and one per payout settled that day that the report does not list
    (missing_at_provider). The same file for the same day answers the same report."""
    field = "report" if body.report is not None else "report_base64"
    try:
        report, created = await asyncio.to_thread(
            app.reconcile_report,
            body.data(),
            body.day,
            actor=staff.sub,
            provider=body.provider,
            tenant=body.tenant,
        )
    except MalformedReport as malformed:  # named by the field the file came in
        raise invalid(field, "malformed_report", str(malformed)) from None
    except ValueError as error:  # not base64
        raise invalid(field, "invalid_base64", str(error)) from None
    return answer(reconciliation_view(report), 201 if created else 200)


@router.get(
    "/reconciliations", response_model=ReconciliationList, summary="Reconciliations, newest first"
)
async def list_reconciliations(
    staff: Reader,
    app: PayoutApp,
    index: Reconciliations,
    request: Request,
    page: ReconciliationPaging,
) -> JSONResponse:
    listed = await asyncio.to_thread(index.page, page)
    reports = await asyncio.to_thread(app.reconciliations_named, listed.ids)
    entries = [reconciliation_entry(report) for report in reports]
    return answer(ReconciliationList.of(request, entries, listed.has_more))


@router.get(
    "/reconciliations/{report_id}",
    response_model=ReconciliationView,
    responses=problem_responses(404),  # no report of that id
    summary="One reconciliation with its findings, as recorded",
)
async def get_reconciliation(report_id: ReportId, staff: Reader, app: PayoutApp) -> JSONResponse:
    report = await asyncio.to_thread(app.reconciliation_named, report_id)
    return answer(reconciliation_view(report))
