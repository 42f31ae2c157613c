"""The warehouse's API for returns, and the carrier's push route.

`GET /v1/returns` lists returns (filters, cursor paging, newest or soonest due first);
`GET /v1/returns/{refund_id}` shows one; `POST /v1/returns/{refund_id}/receipt` records what
came back, item by item (warehouse or admin; Idempotency-Key like every staff action), and in
the same transaction what it decides: the payment less deductions, the exchange, or a person.

`POST /v1/carriers/kuaidi100/push` takes Kuaidi100's form (`param`, `sign`; sandbox/CARRIER.md):
a push whose sign is not ours is refused (403, counted, logged, nothing stored); a verified
one is merged into its return's trail and answered as Kuaidi100 expects.
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.review.deps import (
    PushMeter,
    Receiving,
    RefundId,
    ReturnOrder,
    ReturnPaging,
    ReturnReader,
    Returns,
    ReturnWhere,
    ReviewApp,
)
from services.review.returns.carriers import PUSH_ACCEPTED, BadPushSignature, MalformedPush
from services.review.returns.desk import ShipmentNotFound
from services.review.returns.schemas import ReceiptRequest, ReturnList, ReturnView
from services.review.returns.views import return_entry, shown_return
from services.review.returns.workers import CARRIER_ACTOR
from shared.keyed import answer
from shared.problems import Problem, not_found, problem_response, problem_responses
from shared.staff import staff_problem_responses

log = logging.getLogger(__name__)
MAX_PUSH_BYTES = 1_000_000

router = APIRouter(
    prefix="/v1",
    tags=["returns"],
    responses=staff_problem_responses(401, 403) | problem_responses(422),
)
carrier_router = APIRouter(prefix="/v1/carriers", tags=["carriers"])


@router.get("/returns", response_model=ReturnList, summary="Returns, newest or soonest due first")
async def list_returns(
    staff: ReturnReader,
    app: ReviewApp,
    returns: Returns,
    page: ReturnPaging,
    where: ReturnWhere,
    request: Request,
    order: ReturnOrder = "newest",
) -> JSONResponse:
    """Cursor pagination as in Stripe, along the order asked for; `overdue=true` lists
    returns past the deadline running now (ship-by, or receipt-by after delivery)."""
    now = app.now()
    rows, has_more = await asyncio.to_thread(returns.page, where, page, now, order)
    return answer(ReturnList.of(request, [return_entry(row, now) for row in rows], has_more))


@router.get(
    "/returns/{refund_id}",
    response_model=ReturnView,
    summary="One return: items, deadlines, carrier trail, inspection, every step",
    responses=problem_responses(404),
)
async def get_return(refund_id: RefundId, staff: ReturnReader, app: ReviewApp) -> JSONResponse:
    found = await asyncio.to_thread(app.returns.of, refund_id)
    return answer(shown_return(found, app.now()))


@router.post(
    "/returns/{refund_id}/receipt",
    response_model=ReturnView,
    summary="Record what came back, item by item",
    responses=problem_responses(404)
    | {
        409: problem_response(
            409,
            "The return is not shipped yet, already received, closed or withdrawn (`type`"
            " names why), or the Idempotency-Key was used for another request.",
        )
    },
)
async def record_receipt(
    refund_id: RefundId, body: ReceiptRequest, staff: Receiving, app: ReviewApp
) -> JSONResponse:
    """Allowed once the goods are shipped (in transit or delivered). Each item's deduction
    follows the policy the refund was decided under and cites its rule; units not received
    are not paid; a wrong item, heavy damage or no rule sends the refund to a person. An
    item never approved for return (`items.N.sku`) or more than was asked
    (`items.N.quantity`) is a 422; nothing is stored on any refusal."""
    found, replayed = await asyncio.to_thread(
        app.returns.receive_once,
        refund_id,
        body.lines(),
        note=body.note,
        person=staff.sub,
        keyed=staff.keyed(body),
    )
    return answer(shown_return(found, app.now()), 200, replayed)


class PushAnswer(BaseModel):
    """What Kuaidi100 expects back: `result` true stops it repeating the push."""

    result: bool = Field(examples=[True])
    returnCode: str = Field(examples=["200"])
    message: str = Field(examples=["成功"])


@carrier_router.post(
    "/kuaidi100/push",
    response_model=PushAnswer,
    summary="Kuaidi100's tracking push (form: param, sign)",
    responses=problem_responses(403, 404, 422),
)
async def kuaidi100_push(request: Request, app: ReviewApp, pushes: PushMeter) -> JSONResponse:
    """Verified against our salt before anything is read; the trail is merged as a set of
    events, so a repeated or older push changes nothing (and is answered as accepted, so
    that Kuaidi100 stops repeating it)."""
    if pushes.carrier is None:
        raise not_found("carrier", "No carrier is configured; pushes are not taken.")
    raw = await request.body()
    if len(raw) > MAX_PUSH_BYTES:
        pushes.count("malformed")
        raise Problem(413, "Too large", "A push is at most 1 MB.", kind="too-large")
    form = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    try:
        trail = pushes.carrier.parse_push(form)
    except BadPushSignature as forged:
        pushes.count("forged")
        log.warning("refused a carrier push: %s (from %s)", forged, request.client)
        raise Problem(
            403,
            "Forged push",
            str(forged),
            kind="bad-signature",
            errors=[{"field": "sign", "code": "bad_signature", "message": str(forged)}],
        ) from forged
    except MalformedPush as malformed:
        pushes.count("malformed")
        raise Problem(
            422,
            "Invalid request",
            str(malformed),
            kind="validation",
            errors=[{"field": "param", "code": "malformed", "message": str(malformed)}],
        ) from malformed
    try:
        news = await asyncio.to_thread(app.returns.track, trail, actor=CARRIER_ACTOR)
    except ShipmentNotFound as unknown:
        pushes.count("unknown_shipment")
        raise not_found("shipment", f"No return was shipped as {unknown}.") from unknown
    pushes.count("recorded" if news else "nothing_new")
    return JSONResponse(PUSH_ACCEPTED)
