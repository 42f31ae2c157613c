"""`GET /v1/refunds/{id}/events`: the refund's whole story across the four services.

Intake answers from its own events and asks review, payout and notify for
theirs (`GET /v1/audit/refunds/{id}`) with a short-lived auditor token of its
own; a service that does not answer is named in `incomplete`, never guessed.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.intake.application import IntakeApplication
from services.intake.deps import IntakeApp, RefundId, Settings, Tenant
from services.intake.schemas import EventList, EventView
from services.intake.views import event_view
from shared.keyed import answer
from shared.problems import problem_responses
from shared.staff_tokens import encode, staff_claims
from shared.timeline import Moment, moment, ordered

PEER_TIMEOUT_SECONDS = 5.0
TOKEN_SECONDS = 60

router = APIRouter(prefix="/v1", tags=["refunds"], responses=problem_responses(401))


class Timeline(EventList):
    incomplete: list[str] = Field(
        default_factory=list,
        description="services whose part could not be fetched (the rest is still in order)",
    )


@router.get(
    "/refunds/{refund_id}/events",
    response_model=Timeline,
    summary="The refund's audit timeline across all four services",
    responses=problem_responses(404),
)
async def refund_events(
    refund_id: RefundId, tenant: Tenant, app: IntakeApp, settings: Settings, request: Request
) -> JSONResponse:
    """Intake's events for this refund (with the review and payout facts it recorded) and
    review's, payout's and notify's own ledger entries about it: causes before effects,
    each with its source, actor and causation. Peers' entries carry a summary of facts,
    never free text."""
    own = await asyncio.to_thread(_own_events, app, tenant, refund_id)
    token = encode(
        staff_claims("service:intake", ["auditor"], TOKEN_SECONDS), settings.staff_secret()
    )
    peers = settings.peers()
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
    story = [views[m.event_id] for m in ordered(moments)]
    return answer(Timeline.of(request, story, incomplete=incomplete))


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
