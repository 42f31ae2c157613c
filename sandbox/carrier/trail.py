"""A shipment's trail as Kuaidi100 shows it: events, `lastResult`, the pushed `param`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sandbox.carrier.protocol import STATE_NAMES, STEPS, PushStatus, Stage

# Kuaidi100 stamps events in China Standard Time, without a zone.
_CST = timezone(timedelta(hours=8))
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_STATE_OF: dict[str, str] = {stage: step.state for stage, step in STEPS.items()}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def state_of(stage: str) -> str:
    """Kuaidi100's `state` for a stage (a shipment not yet picked up counts as 在途)."""
    return _STATE_OF.get(stage, "0")


def shipment_view(row: dict[str, Any]) -> dict[str, Any]:
    """A shipment as the test controls show it."""
    return {
        "company": row["company"],
        "number": row["number"],
        "stage": row["stage"],
        "state": state_of(row["stage"]),
        "ischeck": "1" if row["stage"] == "delivered" else "0",
        "subscribed": bool(row["subscribed"]),
        "push_status": row["push_status"],
        "callbackurl": row["callbackurl"],
        "trail": json.loads(row["trail"]),
        "created_at": row["created_at"],
    }


def last_result(
    company: str, number: str, stage: str, trail: list[dict[str, Any]]
) -> dict[str, Any]:
    """Kuaidi100's result object: the push's `lastResult` and the query's answer."""
    return {
        "message": "ok",
        "state": state_of(stage),
        "status": "200",
        "condition": "F00",
        "ischeck": "1" if stage == "delivered" else "0",
        "com": company,
        "nu": number,
        "data": trail,
    }


def push_param(
    company: str, number: str, stage: str, trail: list[dict[str, Any]], status: PushStatus
) -> str:
    """The `param` JSON text of a push; its exact characters are what `sign` covers."""
    message = "3天查询无记录" if status == "abort" else ""
    body = {
        "status": status,
        "message": message,
        "autoCheck": "0",
        "comOld": "",
        "comNew": "",
        "lastResult": last_result(company, number, stage, trail),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def new_event(stage: Stage, previous: list[dict[str, Any]]) -> dict[str, Any]:
    step = STEPS[stage]
    moment = datetime.now(_CST).replace(microsecond=0, tzinfo=None)
    if previous:
        # Each event strictly after the one before, even when advanced within a second.
        latest = datetime.strptime(previous[0]["time"], _TIME_FORMAT)
        moment = max(moment, latest + timedelta(seconds=1))
    stamp = moment.strftime(_TIME_FORMAT)
    return {
        "context": step.context,
        "time": stamp,
        "ftime": stamp,
        "status": STATE_NAMES[step.state],
        "areaName": step.area,
    }
