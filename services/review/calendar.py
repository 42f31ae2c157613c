"""Business days: the calendar SLA deadlines are counted in, and clocks that can pause.

"Review within 1 business day" means something different on a Friday evening
and before the October holidays, so deadlines are computed here rather than by
adding 24 hours. Time is counted in whole working days of the business's time
zone (Asia/Shanghai by default): a working day contributes 24 hours of business
time, a weekend or holiday none. Pure: stdlib only, tz-aware datetimes in, UTC out.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)
ZERO = timedelta(0)


@dataclass(frozen=True)
class WorkingCalendar:
    """Which days are worked, where.

    `workdays` are weekday numbers (Monday 0 … Sunday 6); `holidays` are days
    off even on a weekday; `working_weekends` are make-up working days (调休)
    that fall on a weekend.
    """

    timezone: str = "Asia/Shanghai"
    workdays: Set[int] = frozenset(range(5))
    holidays: Set[date] = field(default_factory=frozenset)
    working_weekends: Set[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # refuse an unknown zone now, not at the first deadline
        if not self.workdays or not set(self.workdays) <= set(range(7)):
            raise ValueError("workdays must be a non-empty set of weekday numbers 0..6")
        # Frozen sets, so that the calendar is hashable and cannot change under a clock.
        object.__setattr__(self, "workdays", frozenset(self.workdays))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "working_weekends", frozenset(self.working_weekends))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: date) -> bool:
        if day in self.working_weekends:
            return True
        return day.weekday() in self.workdays and day not in self.holidays

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The deadline `days` business days after `start`: the same local clock time on
        the `days`-th working day after it. A start on a day off counts from the start
        (00:00) of the next working day."""
        if days < 0:
            raise ValueError("days must not be negative")
        return self.add_business_time(start, days * DAY)

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of business time after `start` has elapsed (e.g. what an
        SLA clock had left when it was paused)."""
        if duration < ZERO:
            raise ValueError("duration must not be negative")
        moment, remaining = self._local(start), duration
        while True:
            day = moment.date()
            next_day = datetime.combine(day + DAY, time())
            if self.is_working_day(day):
                if remaining <= next_day - moment:
                    return self._utc(moment + remaining)
                remaining -= next_day - moment
            moment = next_day

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end`; zero if `end` is not after `start`."""
        begin, finish = self._local(start), self._local(end)
        total = ZERO
        day = begin.date()
        while day <= finish.date():
            if self.is_working_day(day):
                day_start = datetime.combine(day, time())
                overlap = min(finish, day_start + DAY) - max(begin, day_start)
                total += max(overlap, ZERO)
            day += DAY
        return total

    def _local(self, moment: datetime) -> datetime:
        """Naive local wall-clock time: a business day is a calendar day, DST or not."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{moment} must be timezone-aware")
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.zone).astimezone(UTC)


@dataclass(frozen=True)
class SlaClock:
    """A stage's deadline that stops while we wait for the customer.

    Running: `deadline` is set. Paused (e.g. evidence requested): `deadline` is
    None and `remaining` holds the business time that was left, which restarts
    from the moment the customer answers. Plain data, to record in events.
    """

    deadline: datetime | None
    remaining: timedelta = ZERO
    paused_at: datetime | None = None

    @classmethod
    def start(cls, calendar: WorkingCalendar, at: datetime, business_days: int) -> SlaClock:
        return cls(deadline=calendar.add_business_days(at, business_days))

    @property
    def paused(self) -> bool:
        return self.deadline is None

    def pause(self, calendar: WorkingCalendar, at: datetime) -> SlaClock:
        """Stop the clock at `at`, keeping the business time left (zero if already due)."""
        if self.deadline is None:
            return self
        left = calendar.business_time_between(at, self.deadline)
        return SlaClock(deadline=None, remaining=left, paused_at=at.astimezone(UTC))

    def resume(self, calendar: WorkingCalendar, at: datetime) -> SlaClock:
        """Restart at `at` with the business time that was left when paused."""
        if self.deadline is not None:
            return self
        return SlaClock(deadline=calendar.add_business_time(at, self.remaining))

    def overdue(self, at: datetime) -> bool:
        """Past its deadline at `at` (a paused clock is never overdue)."""
        return self.deadline is not None and at >= self.deadline
