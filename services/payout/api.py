"""Payout's HTTP surface: the gateway's completion callbacks (staff routes come later)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from sandbox.gateway import verify_signature
from services.payout.application import PayoutApplication
from services.payout.settings import CALLBACK_PATH
from shared.http import Problem, problem_responses

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
