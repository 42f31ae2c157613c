"""Whether a request may be refunded at all: closed refund windows, non-refundable items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from services.review.refund_facts import DAY, HOUR, MICROSECOND, Check, Facts, Line

if TYPE_CHECKING:
    from services.review.policy_document import Policy
    from services.review.policy_eligibility import NonRefundableRule, WindowRule


@dataclass(frozen=True)
class ClosedWindow:
    """A refund window that had closed when the request came."""

    rule: WindowRule
    category: str
    closes_at: datetime
    days_late: int
    hours_late: int


def closed_window(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> ClosedWindow | None:
    """The first closed window among the requested items' windows (the request is decided
    as a whole; items whose window is still open can be asked for separately)."""
    categories = [facts.lines[i].category for i, _ in wanted] or ["*"]
    first: ClosedWindow | None = None
    seen: set[str] = set()
    for category in categories:
        window = _window_for(policy, category, facts.reason)
        if window is None or window.id in seen:
            continue
        seen.add(window.id)
        anchor = facts.delivered_at if window.anchor == "delivery" else facts.paid_at
        if anchor is None:
            checks.append(Check(window.id, True, "not delivered yet: the window has not started"))
            continue
        closes_at = _closes_at(window, anchor, ZoneInfo(policy.calendar.timezone))
        is_open = facts.requested_at < closes_at
        checks.append(
            Check(
                window.id,
                is_open,
                f"{category}: {window.anchor} {anchor.isoformat()}, closes "
                f"{closes_at.isoformat()}, requested {facts.requested_at.isoformat()}",
            )
        )
        if not is_open and first is None:
            zone = ZoneInfo(policy.calendar.timezone)
            late = facts.requested_at - closes_at
            if window.days is not None:  # calendar days late, in local time
                last_open = (closes_at.astimezone(zone) - MICROSECOND).date()
                days_late = (facts.requested_at.astimezone(zone).date() - last_open).days
            else:
                days_late = late // DAY + 1
            first = ClosedWindow(window, category, closes_at, days_late, late // HOUR + 1)
    return first


def _window_for(policy: Policy, category: str, reason: str) -> WindowRule | None:
    """The first window rule matching (first match wins, as written in the document)."""
    for window in policy.windows:
        if ("*" in window.categories or category in window.categories) and (
            "*" in window.reasons or reason in window.reasons
        ):
            return window
    return None


def _closes_at(window: WindowRule, anchor: datetime, zone: ZoneInfo) -> datetime:
    """The first moment outside the window.

    Hours count exactly. Days count calendar days in the policy's zone from the
    day after the anchor, to local midnight: delivered 23:30 on the 3rd in
    Shanghai, a 7-day window is open until 24:00 on the 10th, Shanghai time.
    """
    if window.hours is not None:
        return anchor + window.hours * HOUR
    assert window.days is not None
    last_day = anchor.astimezone(zone).date() + window.days * DAY
    return datetime.combine(last_day + DAY, time(), tzinfo=zone)


def non_refundable(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> tuple[NonRefundableRule, Line] | None:
    """The first non-refundable rule that catches a requested item."""
    for rule in policy.non_refundable:
        for i, _ in wanted:
            line = facts.lines[i]
            caught = (not rule.custom_made or line.custom_made) and (
                "*" in rule.categories or line.category in rule.categories
            )
            if not caught:
                continue
            overridden = facts.reason in rule.unless_reasons
            checks.append(
                Check(
                    rule.id,
                    overridden,
                    f"{line.sku} ({line.category}) is in the class; reason {facts.reason} "
                    + ("overrides it" if overridden else "does not override it"),
                )
            )
            if not overridden:
                return rule, line
    return None
