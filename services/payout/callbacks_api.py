"""Payout's gateway callback route: the provider's signed completion notifications."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from services.payout.callbacks import Delivery
from services.payout.deps import PayoutApp, SigningKey
from services.payout.providers.gateway import CALLBACK_ID_HEADER, SIGNATURE_HEADER
from services.payout.schemas import CallbackAck
from services.payout.settings import CALLBACK_PATH
from shared.problems import problem_responses

router = APIRouter(tags=["gateway"])


@router.post(
    CALLBACK_PATH,
    summary="Completion callback from the payment gateway (signed)",
    response_model=CallbackAck,
    responses=problem_responses(400, 401, 409),
)
async def receive(request: Request, app: PayoutApp, key: SigningKey) -> CallbackAck:
    # The signature covers the exact bytes: read them raw, parse only after checking.
    delivery = Delivery(
        body=await request.body(),
        signature=request.headers.get(SIGNATURE_HEADER),
        callback_id=request.headers.get(CALLBACK_ID_HEADER),
        at=datetime.now(UTC),
    )
    callback_id, outcome = await app.call(app.receive_delivery, delivery, key)
    return CallbackAck(id=callback_id, outcome=outcome)
