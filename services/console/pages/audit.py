"""The auditor's pages (read-only): one refund's timeline across the four services, each
service's ledger check and how far its signed checkpoints reach, and an export of a range of
a service's ledger as CSV or JSON Lines.

The timeline is built here from each service's own audit entries about the refund
(`GET /v1/audit/refunds/{id}`, the auditor's staff path), ordered causes-first by
`shared.timeline`; a service that does not answer is named, never guessed."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from services.console.calls import SERVICES, Refused, Services, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.audit_range import time_window
from services.console.pages.explain import explained, local_problem
from services.console.pages.gate import refused
from shared.timeline import Moment, moment, ordered

router = APIRouter()
GROUP = "/audit"
EXPORT_PAGE = 1000  # entries per call to the audit log (its maximum)
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
CSV_COLUMNS = (
    "service",
    "position",
    "time",
    "aggregate_id",
    "aggregate_version",
    "type",
    "actor",
    "via",
    "causation_id",
    "correlation_id",
    "event_id",
    "hash",
    "leaf_hash",
)
RefundQuery = Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9_-]*$")]
# A form's date field: YYYY-MM-DD, or empty (an empty field is sent as `name=`).
DateQuery = Annotated[str, Query(max_length=10)]


async def _entries_of(calls: Services, service: str, refund_id: str) -> list[dict[str, Any]]:
    found = await calls.get(service, f"/v1/audit/refunds/{refund_id}")
    return list(found["data"])


async def timeline(calls: Services, refund_id: str) -> tuple[list[Moment], list[str]]:
    """Every service's moments about the refund, causes first; the services that did not
    answer."""
    fetched = await asyncio.gather(
        *(_entries_of(calls, service, refund_id) for service in SERVICES), return_exceptions=True
    )
    moments: list[Moment] = []
    missing: list[str] = []
    for service, answer in zip(SERVICES, fetched, strict=True):
        if isinstance(answer, (Refused, Unreachable)):
            missing.append(service)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            moments += [moment(service, entry) for entry in answer]
    return ordered(moments), missing


async def _ledger(calls: Services, service: str) -> dict[str, Any]:
    """One service's ledger check and its latest signed checkpoint (or why not known)."""
    try:
        verified, signed = await asyncio.gather(
            calls.get(service, "/v1/audit/verify"), calls.get(service, "/v1/audit/checkpoints")
        )
    except (Refused, Unreachable):
        return {"service": service, "answered": False}
    last = signed["data"][-1] if signed["data"] else None
    return {"service": service, "answered": True, "verify": verified, "last": last}


RECENT_ENTRIES = 200  # intake's newest ledger entries read for the recent refunds
RECENT_SHOWN = 20


async def recent_refunds(calls: Services) -> list[dict[str, Any]] | None:
    """The refunds intake's ledger touched lately, newest first (None: intake did not say)."""
    try:
        found = await calls.get("intake", "/v1/audit/latest", {"limit": RECENT_ENTRIES})
    except (Refused, Unreachable):
        return None
    seen: dict[str, dict[str, Any]] = {}
    for entry in found["data"]:
        refund_id = entry.get("correlation_id")
        if refund_id and refund_id not in seen:
            seen[refund_id] = {"refund_id": refund_id, "time": entry["time"], "type": entry["type"]}
    return list(seen.values())[:RECENT_SHOWN]


@router.get("/audit")
async def audit(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    refund_id: RefundQuery = "",
) -> Response:
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    story: list[Moment] = []
    missing: list[str] = []
    recent = None
    if refund_id:
        story, missing = await timeline(calls, refund_id)
    else:
        recent = await recent_refunds(calls)
    return pages.page(
        request,
        "audit/index.html",
        refund_id=refund_id,
        story=story,
        missing=missing,
        recent=recent,
        services=SERVICES,
        formats=tuple(EXPORT_FORMATS),
        zone=pages.zone_of(request.scope.get("session") or {}).key,
    )


@router.get("/audit/ledgers")
async def ledgers(request: Request, person: SignedIn, calls: Calls, pages: Pages) -> Response:
    """Each service recomputes its ledger from its stored events (a full pass: on request
    only, never on every audit page)."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    checked = await asyncio.gather(*(_ledger(calls, service) for service in SERVICES))
    return pages.page(request, "audit/ledgers.html", ledgers=checked)


def _lines(entries: list[dict[str, Any]], service: str, form: str) -> str:
    if form == "jsonl":
        return "".join(
            json.dumps({"service": service, **e}, ensure_ascii=False, sort_keys=True) + "\n"
            for e in entries
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for entry in entries:
        writer.writerow([service if c == "service" else entry.get(c, "") for c in CSV_COLUMNS])
    return out.getvalue()


@router.get("/audit/export")
async def export(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    service: Annotated[str, Query(max_length=20)] = "intake",
    format: Annotated[str, Query(max_length=10)] = "csv",
    start: Annotated[int, Query(ge=1, le=2**62)] = 1,
    # Text, not an int: the form sends its empty "to position" field as `end=`.
    end: Annotated[str, Query(max_length=19, pattern=r"^([1-9][0-9]*)?$")] = "",
    from_date: DateQuery = "",
    to_date: DateQuery = "",
) -> Response:
    """Positions `start`..`end` (inclusive; to the end without `end`) of one service's ledger,
    and of those only the ones stored from `from_date` through `to_date` (whole days in the
    person's zone) when given; streamed page by page from its audit log: nothing is held
    whole in memory."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    _ = pages.gettext(request)
    bad: dict[str, str] = {}
    if service not in SERVICES:
        bad["service"] = _("Choose one of the offered values.")
    if format not in EXPORT_FORMATS:
        bad["format"] = _("Choose one of the offered values.")
    zone = pages.zone_of(request.scope.get("session") or {})
    window = time_window(from_date, to_date, zone)
    if isinstance(window, dict):
        bad.update({field: _(text) for field, text in window.items()})
    if bad:
        return pages.page(request, "problem.html", 422, problem=local_problem(bad, _))
    assert not isinstance(window, dict)
    since, until = window
    last = int(end) if end else None
    asked = {"limit": EXPORT_PAGE} | {
        name: bound.isoformat() for name, bound in (("since", since), ("until", until)) if bound
    }
    try:  # the first page before the download starts: a refusal is still a page
        first = await calls.get(service, "/v1/audit/log", {**asked, "after": start - 1})
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        return pages.page(request, "problem.html", status, problem=explained(error, _))

    async def chunks() -> AsyncIterator[str]:
        if format == "csv":
            yield ",".join(CSV_COLUMNS) + "\n"
        page = first
        while True:
            entries = [e for e in page["data"] if last is None or e["position"] <= last]
            yield _lines(entries, service, format)
            done = len(entries) < len(page["data"]) or not page["has_more"]
            if done or page["next_after"] is None:
                return
            page = await calls.get(service, "/v1/audit/log", {**asked, "after": page["next_after"]})

    days = f"-{from_date or 'start'}-{to_date or 'end'}" if from_date or to_date else ""
    name = f"{service}-ledger-{start}-{last or 'end'}{days}.{format}"
    return StreamingResponse(
        chunks(),
        media_type=EXPORT_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
