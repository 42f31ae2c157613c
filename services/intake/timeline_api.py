"""`GET /v1/refunds/{id}/events`: the refund's whole story across the four services.

Intake answers from its own events and asks review, payout and notify for
theirs (`GET /v1/audit/refunds/{id}`) with a short-lived auditor token of its
own; a service that does not answer is named in `incomplete`, never guessed.
"""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.intake.application import IntakeApplication, RefundNotFound
from services.intake.schemas import EventList, EventView
from services.intake.views import event_view
from shared.auth import ApiKeys
from shared.http import Problem, problem_responses
from shared.staff_tokens import encode, staff_claims
from shared.timeline import Moment, moment, ordered

PEER_TIMEOUT_SECONDS = 5.0
TOKEN_SECONDS = 60


class Timeline(EventList):
    incomplete: list[str] = Field(
        default_factory=list,
        description="services whose part could not be fetched (the rest is still in order)",
    )


def build_timeline_router(
    app: IntakeApplication,
    keys: ApiKeys,
    peers: dict[str, str],
    staff_secret: str,
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["refunds"])

    @router.get(
        "/refunds/{refund_id}/events",
        response_model=Timeline,
        summary="The refund's audit timeline across all four services",
        responses=problem_responses(401, 404),
    )
    async def refund_events(
        refund_id: Annotated[
            str,
            Path(description="the refund's id", examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"]),
        ],
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        """Intake's events for this refund (with the review and payout facts it recorded) and
        review's, payout's and notify's own ledger entries about it: causes before effects,
        each with its source, actor and causation. Peers' entries carry a summary of facts,
        never free text."""
        tenant = keys.tenant_for(authorization)
        try:
            own = await asyncio.to_thread(_own_events, app, tenant, refund_id)
        except RefundNotFound:
            raise Problem(
                404, "No such refund", f"No refund {refund_id}.", kind="not-found"
            ) from None
        token = encode(staff_claims("service:intake", ["auditor"], TOKEN_SECONDS), staff_secret)
        fetched = await asyncio.gather(
            *(_peer_entries(url, refund_id, token) for url in peers.values())
        )
        views = {view.id: view for _, view in own}
        moments = [m for m, _ in own]
        incomplete = []
        for service, entries in zip(peers, fetched, strict=True):
            if entries is None:
                incomplete.append(service)
                continue
            for entry in entries:
                found = moment(service, entry)
                moments.append(found)
                views[found.event_id] = _peer_view(found)
        story = [views[m.event_id].model_dump(mode="json") for m in ordered(moments)]
        return JSONResponse(
            {
                "object": "list",
                "url": request.url.path,
                "has_more": False,
                "data": story,
                "incomplete": incomplete,
            }
        )

    return router


def _own_events(
    app: IntakeApplication, tenant: str, refund_id: str
) -> list[tuple[Moment, EventView]]:
    shown = []
    for event in app.history(tenant, refund_id):
        view = event_view(event, app.keys)
        if view is None:
            continue
        at = event.timestamp.astimezone(UTC).isoformat(timespec="microseconds")
        shown.append(
            (
                Moment(
                    "intake",
                    event.originator_version,
                    at,
                    view.type,
                    view.actor,
                    view.causation_id,
                    view.id,
                ),
                view,
            )
        )
    return shown


def _peer_view(found: Moment) -> EventView:
    return EventView(
        id=found.event_id,
        type=found.type,
        source=found.service,  # type: ignore[arg-type]
        at=datetime.fromisoformat(found.time),
        actor=found.actor,
        position=found.position,
        causation_id=found.causation_id,
        data=found.summary,
    )


async def _peer_entries(url: str, refund_id: str, token: str) -> list[dict[str, Any]] | None:
    try:
        async with httpx.AsyncClient(timeout=PEER_TIMEOUT_SECONDS) as client:
            response = await client.get(
                f"{url.rstrip('/')}/v1/audit/refunds/{refund_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
        response.raise_for_status()
        data = response.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, list) else None
