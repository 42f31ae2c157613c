"""Payout's HTTP surface: the gateway's completion callbacks and the finance staff API.

Staff routes (`staff_router`) list and show payouts, take a failed payout further
(retry, store balance, manual payment: finance or admin, each recording the person
of the staff token as its actor) and reconcile the provider's settlement report.
Every finance POST takes an optional Idempotency-Key as review's do: the same key
and body replay the first answer with `Idempotent-Replayed: true`; the same key with
another body or endpoint is a 409; keys belong to the staff person (`sub`).
"""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in staff_router() at runtime.

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.payout.application import PayoutApplication, PayoutNotFound
from services.payout.domain import Payout, PayoutActionRefused
from services.payout.gateway import verify_signature
from services.payout.index import PayoutIndex, PayoutQuery, ReconciliationIndex, UnknownCursor
from services.payout.reconcile import MalformedReport
from services.payout.schemas import (
    ManualPaymentRequest,
    PayoutList,
    PayoutMethod,
    PayoutStatus,
    PayoutView,
    ReconciliationList,
    ReconciliationRequest,
    ReconciliationView,
    SwitchToStoreBalanceRequest,
)
from services.payout.settings import CALLBACK_PATH
from services.payout.views import (
    payout_entry,
    payout_view,
    reconciliation_entry,
    reconciliation_view,
)
from shared.http import Problem, problem_response, problem_responses
from shared.idempotency import IdempotencyMismatch, KeyedRequest
from shared.ids import parse_public_id
from shared.keyed import IdempotencyKey, answer, idempotency_conflict, invalid, keyed, one_cursor
from shared.staff import Staff, StaffAuth, staff_problem_responses

SIGNATURE_HEADER = "Gateway-Signature"
CALLBACK_ID_HEADER = "Gateway-Callback-Id"


class CallbackAck(BaseModel):
    id: str
    outcome: str


def callbacks_router(
    app: PayoutApplication,
    secret: str,
    *,
    tolerance_s: int = 300,
    now: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(tags=["gateway"])

    @router.post(
        CALLBACK_PATH,
        summary="Completion callback from the payment gateway (signed)",
        response_model=CallbackAck,
        responses=problem_responses(400, 401, 409),
    )
    async def receive(request: Request) -> CallbackAck:
        # The signature covers the exact bytes: read them raw, parse only after checking.
        body = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        header_id = request.headers.get(CALLBACK_ID_HEADER)
        at = datetime.now(UTC)

        async def refuse(status: int, reason: str, detail: str) -> Problem:
            await asyncio.to_thread(
                app.refuse_callback,
                reason=reason,
                callback_id=header_id,
                signature=signature,
                body=body,
                at=at,
            )
            return Problem(status, "Callback refused", detail, kind=f"callback-{reason}")

        if not signature or not verify_signature(
            secret, signature, body, now=now(), tolerance_seconds=tolerance_s
        ):
            raise await refuse(401, "bad-signature", "The signature is missing, wrong, or too old.")
        event = _parse(body)
        callback_id = str(event.get("id") or "") if event else ""
        if not event or not callback_id or not isinstance(event.get("data"), dict):
            raise await refuse(400, "malformed", "The callback is not a gateway notification.")
        if header_id is not None and header_id != callback_id:
            raise await refuse(400, "id-mismatch", f"{CALLBACK_ID_HEADER} differs from the body.")
        outcome = await asyncio.to_thread(app.receive_callback, callback_id, event, at)
        if outcome == "replayed":
            raise Problem(
                409,
                "Callback already processed",
                f"Callback {callback_id} was processed before; it has no further effect.",
                kind="callback-replayed",
            )
        return CallbackAck(id=callback_id, outcome=outcome)

    return router


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


# -- the staff API ----------------------------------------------------------------------------

FINANCE = ("finance", "admin")
READERS = ("finance", "auditor", "admin")
PayoutId = Annotated[str, Path(max_length=100, description="the payout's id, `po_…` (or its UUID)")]
ReportId = Annotated[
    str, Path(max_length=100, description="the reconciliation's id, `rc_…` (or its UUID)")
]
Cursor = Annotated[str | None, Query(max_length=100)]


def parse_id(prefix: str, text: str) -> uuid.UUID | None:
    """`prefix_<hex>` or a plain UUID; None for anything else (a 404, never a 500)."""
    found = parse_public_id(prefix, text)
    if found is not None:
        return found
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def payout_not_found(payout_id: str) -> Problem:
    return Problem(404, "No such payout", f"No payout {payout_id}.", kind="not-found")


def staff_router(
    app: PayoutApplication,
    index: PayoutIndex,
    reports: ReconciliationIndex,
    auth: StaffAuth,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Reader = Annotated[Staff, Depends(auth.dependency(*READERS))]
    Finance = Annotated[Staff, Depends(auth.dependency(*FINANCE))]

    async def act(
        payout_id: str, change: Callable[[Payout], None], key: KeyedRequest | None
    ) -> JSONResponse:
        uid = parse_id("po", payout_id)
        if uid is None:
            raise payout_not_found(payout_id)

        def work() -> tuple[PayoutView, bool]:
            payout, replayed = app.act_once(uid, change, key)
            return payout_view(payout, app.history(uid)[: payout.version]), replayed

        try:
            view, replayed = await asyncio.to_thread(work)
        except PayoutNotFound:
            raise payout_not_found(payout_id) from None
        except IdempotencyMismatch:
            raise idempotency_conflict() from None
        except PayoutActionRefused as refused:
            raise Problem(
                409, "Not allowed in this state", str(refused), kind="payout-action-refused"
            ) from None
        return answer(view, 200, replayed)

    # -- payouts ------------------------------------------------------------------------------

    @router.get(
        "/payouts",
        tags=["payouts"],
        response_model=PayoutList,
        summary="Payouts, newest first",
        responses=staff_problem_responses(401, 403, 422),
    )
    async def list_payouts(
        staff: Reader,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        starting_after: Annotated[
            str | None, Query(max_length=100, description="a payout id: older payouts")
        ] = None,
        ending_before: Annotated[
            str | None, Query(max_length=100, description="a payout id: newer payouts")
        ] = None,
        refund_id: Annotated[str | None, Query(max_length=100)] = None,
        status: PayoutStatus | None = None,
        method: PayoutMethod | None = None,
        created_after: Annotated[
            datetime | None, Query(description="created strictly after (ISO 8601)")
        ] = None,
        created_before: Annotated[
            datetime | None, Query(description="created strictly before (ISO 8601)")
        ] = None,
    ) -> JSONResponse:
        """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
        next (older) page; `ending_before` the first id gives the previous one."""
        one_cursor(starting_after, ending_before)
        for name, moment in (("created_after", created_after), ("created_before", created_before)):
            if moment is not None and moment.tzinfo is None:
                raise invalid(f"query.{name}", "timezone", "give a time zone, e.g. Z")
        query = PayoutQuery(
            limit=limit,
            refund_id=refund_id,
            status=status,
            method=method,
            created_after=created_after,
            created_before=created_before,
            starting_after=starting_after,
            ending_before=ending_before,
        )

        def look() -> PayoutList:
            page = index.page(query)
            payouts = [app.payout(parse_public_id("po", i) or uuid.UUID(i)) for i in page.ids]
            return PayoutList(
                url=request.url.path,
                has_more=page.has_more,
                data=[payout_entry(p) for p in payouts],
            )

        try:
            body = await asyncio.to_thread(look)
        except UnknownCursor as unknown:
            name = "starting_after" if starting_after else "ending_before"
            raise invalid(f"query.{name}", "unknown_cursor", f"no payout {unknown}") from None
        return answer(body)

    @router.get(
        "/payouts/{payout_id}",
        tags=["payouts"],
        response_model=PayoutView,
        summary="One payout: attempts, dispatches, outcome and who did what",
        responses=staff_problem_responses(401, 403, 404),
    )
    async def get_payout(payout_id: PayoutId, staff: Reader) -> JSONResponse:
        uid = parse_id("po", payout_id)

        def look() -> PayoutView | None:
            payout = app.find_payout(uid) if uid is not None else None
            if payout is None:
                return None
            return payout_view(payout, app.history(payout.id))

        view = await asyncio.to_thread(look)
        if view is None:
            raise payout_not_found(payout_id)
        return answer(view)

    action_problems = staff_problem_responses(401, 403, 404) | {
        409: problem_response(
            409,
            "The payout's state does not allow this (`payout-action-refused`: only a failed"
            " payout can be taken further), or the Idempotency-Key was used for another"
            " request (`idempotency-conflict`).",
        ),
    }

    @router.post(
        "/payouts/{payout_id}/retry",
        tags=["finance"],
        response_model=PayoutView,
        summary="Retry a failed payout (a new attempt series)",
        responses=action_problems,
    )
    async def retry(
        payout_id: PayoutId,
        staff: Finance,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The executor sends it again under the same merchant refund number; only when
        the provider closed that number does the new series get a new one."""
        return await act(
            payout_id,
            lambda p: p.retry(staff.sub, app.clock()),
            keyed(staff.scope, idempotency_key, request, None),
        )

    @router.post(
        "/payouts/{payout_id}/switch-to-store-balance",
        tags=["finance"],
        response_model=PayoutView,
        summary="Pay a failed payout into the customer's store balance, with their consent",
        responses=action_problems,
    )
    async def switch_to_store_balance(
        payout_id: PayoutId,
        body: SwitchToStoreBalanceRequest,
        staff: Finance,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await act(
            payout_id,
            lambda p: p.switch_to_store_balance(staff.sub, body.consent_reference, app.clock()),
            keyed(staff.scope, idempotency_key, request, body),
        )

    @router.post(
        "/payouts/{payout_id}/manual-payment",
        tags=["finance"],
        response_model=PayoutView,
        summary="Record that finance paid a failed payout by hand",
        responses=action_problems,
    )
    async def manual_payment(
        payout_id: PayoutId,
        body: ManualPaymentRequest,
        staff: Finance,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """The payout becomes `paid` (`outcome.via`: manual) under the given reference."""
        return await act(
            payout_id,
            lambda p: p.record_manual_payment(staff.sub, body.reference, app.clock()),
            keyed(staff.scope, idempotency_key, request, body),
        )

    # -- reconciliation ------------------------------------------------------------------------

    @router.post(
        "/reconciliations",
        tags=["reconciliation"],
        response_model=ReconciliationView,
        status_code=201,
        summary="Reconcile the provider's settlement report of a day",
        responses=staff_problem_responses(401, 403)
        | {
            200: {
                "description": "This file was reconciled for this day before: the same report",
                "model": ReconciliationView,
            },
            422: problem_response(
                422, "The body is invalid, or the CSV cannot be read (`errors` names the line)."
            ),
        },
    )
    async def reconcile(body: ReconciliationRequest, staff: Finance) -> JSONResponse:
        """One finding per report line (matched, missing_on_our_side, amount_differs,
        status_differs) and one per payout settled that day that the report does not list
        (missing_at_provider). The same file for the same day answers the same report."""
        try:
            report, created = await asyncio.to_thread(
                app.reconcile_report, body.report, body.day, actor=staff.sub
            )
        except MalformedReport as malformed:
            raise invalid("body.report", "malformed_report", str(malformed)) from None
        return answer(reconciliation_view(report), 201 if created else 200)

    @router.get(
        "/reconciliations",
        tags=["reconciliation"],
        response_model=ReconciliationList,
        summary="Reconciliations, newest first",
        responses=staff_problem_responses(401, 403, 422),
    )
    async def list_reconciliations(
        staff: Reader,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        starting_after: Cursor = None,
        ending_before: Cursor = None,
    ) -> JSONResponse:
        one_cursor(starting_after, ending_before)

        def look() -> ReconciliationList:
            page = reports.page(
                limit=limit, starting_after=starting_after, ending_before=ending_before
            )
            found = [app.reconciliation(parse_public_id("rc", i) or uuid.UUID(i)) for i in page.ids]
            return ReconciliationList(
                url=request.url.path,
                has_more=page.has_more,
                data=[reconciliation_entry(r) for r in found if r is not None],
            )

        try:
            body = await asyncio.to_thread(look)
        except UnknownCursor as unknown:
            name = "starting_after" if starting_after else "ending_before"
            detail = f"no reconciliation {unknown}"
            raise invalid(f"query.{name}", "unknown_cursor", detail) from None
        return answer(body)

    @router.get(
        "/reconciliations/{report_id}",
        tags=["reconciliation"],
        response_model=ReconciliationView,
        summary="One reconciliation with its findings, as recorded",
        responses=staff_problem_responses(401, 403, 404),
    )
    async def get_reconciliation(report_id: ReportId, staff: Reader) -> JSONResponse:
        uid = parse_id("rc", report_id)
        report = await asyncio.to_thread(app.reconciliation, uid) if uid else None
        if report is None:
            raise Problem(
                404, "No such reconciliation", f"No reconciliation {report_id}.", kind="not-found"
            )
        return answer(reconciliation_view(report))

    return router
