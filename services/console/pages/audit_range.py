"""The auditor's export by time: a range of whole days in the person's zone, as the UTC
instants the services' audit logs filter on (`since` inclusive, `until` exclusive)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# What the page says about a refused date (msgids of the catalogs).
NOT_A_DATE = "Enter a date as YYYY-MM-DD."
BACKWARDS = "The last day must not be before the first."

Window = tuple[datetime | None, datetime | None]


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC (where midnight falls in a DST gap,
    zoneinfo reads it with the offset before the change: the instant the day begins)."""
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def time_window(first: str, last: str, zone: ZoneInfo) -> Window | dict[str, str]:
    """[start of `first`, start of the day after `last`) in `zone`, as UTC (None for an
    empty field: unbounded that side); or the refused fields with why (msgids)."""
    days: dict[str, date | None] = {}
    refused: dict[str, str] = {}
    for field, text in (("from_date", first), ("to_date", last)):
        try:
            days[field] = _day(text.strip())
        except ValueError:
            refused[field] = NOT_A_DATE
    if refused:
        return refused
    start, end = days["from_date"], days["to_date"]
    if start is not None and end is not None and end < start:
        return {"to_date": BACKWARDS}
    since = day_start(start, zone) if start is not None else None
    until = day_start(end + timedelta(days=1), zone) if end is not None else None
    return since, until
