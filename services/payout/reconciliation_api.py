"""Payout's staff API for reconciliation: reconcile the provider's settlement report of a day
(finance), and read the reports recorded (finance, auditors)."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.payout.bills import bill_days
from services.payout.deps import (
    Finance,
    PayoutApp,
    Providers,
    Reader,
    ReconciliationPaging,
    Reconciliations,
    ReportId,
)
from services.payout.providers.base import (
    BillSource,
    PermanentProviderError,
    TransientProviderError,
)
from services.payout.reconcile import MalformedReport
from services.payout.schemas import (
    ReconciliationFetch,
    ReconciliationList,
    ReconciliationRequest,
    ReconciliationView,
)
from services.payout.tenant_providers import AccountNotConfigured
from services.payout.views import reconciliation_entry, reconciliation_view
from shared.keyed import answer
from shared.problems import Problem, invalid, problem_response, problem_responses
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


@router.post(
    "/reconciliations/fetch",
    response_model=ReconciliationView,
    status_code=201,
    summary="Fetch the tenant's bill of a day from its provider and reconcile it",
    responses={
        200: {
            "description": "The same bill was reconciled for this day before: the same report",
            "model": ReconciliationView,
        },
        404: problem_response(404, "The tenant has no account at that provider."),
        422: problem_response(422, "The body is invalid, or the bill cannot be read."),
        502: problem_response(
            502, "The provider failed, refused, or answered what cannot be verified."
        ),
    },
)
async def fetch_and_reconcile(
    body: ReconciliationFetch, staff: Finance, app: PayoutApp, providers: Providers
) -> JSONResponse:
    """Payout fetches the bill(s) covering `day` from the tenant's own account on the
    provider's protocol, then reconciles them exactly as an uploaded file."""
    account = await asyncio.to_thread(providers.account, body.tenant, body.provider)
    if account is None or not account.active:
        raise AccountNotConfigured(f"{body.tenant} has no {body.provider} account")
    try:
        route = await asyncio.to_thread(providers.route, body.tenant, body.provider)
    except PermanentProviderError as error:  # erased meanwhile
        raise AccountNotConfigured(str(error)) from None
    if not isinstance(route, BillSource):
        raise _provider_failed(body.provider, "its route cannot fetch bills")
    try:
        bills = [await route.bill(day) for day in bill_days(route.bill_zone, body.day)]
    except (TransientProviderError, PermanentProviderError) as error:
        raise _provider_failed(body.provider, str(error)) from None
    try:
        report, created = await asyncio.to_thread(
            app.reconcile_bills,
            bills,
            body.day,
            actor=staff.sub,
            provider=body.provider,
            tenant=body.tenant,
        )
    except MalformedReport as malformed:  # the provider served what is not its bill
        raise _provider_failed(body.provider, f"unreadable bill: {malformed}") from None
    return answer(reconciliation_view(report), 201 if created else 200)


def _provider_failed(provider: str, detail: str) -> Problem:
    return Problem(
        502,
        "Provider failed",
        f"{provider}: {detail}"[:500],
        kind="provider-failed",
    )


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
