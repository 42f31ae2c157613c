"""Business days for SLA deadlines: weekends, holidays, time zones, paused clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.review.calendar import SlaClock, WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
NATIONAL_DAY = {date(2026, 10, d) for d in range(1, 8)}  # Thursday 1st to Wednesday 7th
CALENDAR = WorkingCalendar(holidays=NATIONAL_DAY)


def sh(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A moment on the wall clocks of Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


class TestAddBusinessDays:
    def test_same_clock_time_next_working_day_in_utc(self) -> None:
        deadline = CALENDAR.add_business_days(sh(2026, 11, 2, 10, 0), 1)  # a Monday
        assert deadline == sh(2026, 11, 3, 10, 0)
        assert deadline.tzinfo is UTC

    def test_weekends_are_skipped(self) -> None:
        assert CALENDAR.add_business_days(sh(2026, 11, 6, 10, 0), 1) == sh(2026, 11, 9, 10, 0)
        assert CALENDAR.add_business_days(sh(2026, 11, 6, 10, 0), 5) == sh(2026, 11, 13, 10, 0)

    def test_a_start_on_a_day_off_counts_from_the_next_working_days_start(self) -> None:
        saturday = sh(2026, 11, 7, 10, 0)
        assert CALENDAR.add_business_days(saturday, 1) == sh(2026, 11, 10, 0, 0)

    def test_national_day_holidays(self) -> None:
        assert CALENDAR.add_business_days(sh(2026, 9, 30, 15, 0), 1) == sh(2026, 10, 8, 15, 0)
        assert CALENDAR.add_business_days(sh(2026, 10, 3, 9, 0), 1) == sh(2026, 10, 9, 0, 0)
        assert WorkingCalendar().add_business_days(sh(2026, 9, 30, 15, 0), 1) == sh(
            2026, 10, 1, 15, 0
        )

    def test_make_up_working_weekend(self) -> None:
        calendar = WorkingCalendar(holidays=NATIONAL_DAY, working_weekends={date(2026, 10, 10)})
        assert calendar.is_working_day(date(2026, 10, 10))
        assert calendar.add_business_days(sh(2026, 10, 9, 10, 0), 1) == sh(2026, 10, 10, 10, 0)

    def test_the_local_day_decides_not_the_utc_day(self) -> None:
        # 17:00 UTC on Friday is already Saturday 01:00 in Shanghai: counts from Monday.
        friday_utc = datetime(2026, 11, 6, 17, 0, tzinfo=UTC)
        assert CALENDAR.add_business_days(friday_utc, 1) == sh(2026, 11, 10, 0, 0)
        # 15:59 UTC is still Friday 23:59 in Shanghai: one minute of Friday, then Monday.
        late_friday = datetime(2026, 11, 6, 15, 59, tzinfo=UTC)
        assert CALENDAR.add_business_days(late_friday, 1) == sh(2026, 11, 9, 23, 59)

    def test_other_time_zones_keep_the_local_clock_across_dst(self) -> None:
        berlin = ZoneInfo("Europe/Berlin")
        calendar = WorkingCalendar(timezone="Europe/Berlin")
        friday = datetime(2026, 3, 27, 10, 0, tzinfo=berlin)  # clocks go forward on Sunday
        deadline = calendar.add_business_days(friday, 1)
        assert deadline == datetime(2026, 3, 30, 10, 0, tzinfo=berlin)
        assert deadline == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)

    def test_zero_days_on_a_working_day_is_now(self) -> None:
        assert CALENDAR.add_business_days(sh(2026, 11, 2, 10, 0), 0) == sh(2026, 11, 2, 10, 0)

    def test_refuses_naive_times_negative_days_and_no_workdays(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            CALENDAR.add_business_days(datetime(2026, 11, 2, 10, 0), 1)
        with pytest.raises(ValueError, match="negative"):
            CALENDAR.add_business_days(sh(2026, 11, 2, 10, 0), -1)
        with pytest.raises(ValueError, match="workdays"):
            WorkingCalendar(workdays=set())
        with pytest.raises(Exception, match="Mars"):
            WorkingCalendar(timezone="Mars/Olympus")


class TestBusinessTime:
    def test_only_working_days_count(self) -> None:
        friday_evening, monday_morning = sh(2026, 11, 6, 18, 0), sh(2026, 11, 9, 9, 0)
        assert CALENDAR.business_time_between(friday_evening, monday_morning) == timedelta(hours=15)
        assert CALENDAR.business_time_between(monday_morning, friday_evening) == timedelta(0)

    def test_holidays_do_not_count(self) -> None:
        elapsed = CALENDAR.business_time_between(sh(2026, 9, 30, 12, 0), sh(2026, 10, 8, 12, 0))
        assert elapsed == timedelta(hours=24)

    @given(
        start=st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
        ),
        days=st.integers(0, 30),
    )
    def test_adding_and_measuring_agree(self, start: datetime, days: int) -> None:
        deadline = CALENDAR.add_business_days(start, days)
        first = CALENDAR.add_business_days(start, 0)  # start, or the next working day's start
        assert CALENDAR.business_time_between(first, deadline) == timedelta(days=days)
        assert deadline >= start


class TestSlaClock:
    def test_pause_keeps_the_remaining_business_time(self) -> None:
        clock = SlaClock.start(CALENDAR, sh(2026, 11, 2, 10, 0), 1)  # due Tuesday 10:00
        assert clock.deadline == sh(2026, 11, 3, 10, 0)
        paused = clock.pause(CALENDAR, sh(2026, 11, 2, 16, 0))  # evidence requested
        assert paused.paused and paused.remaining == timedelta(hours=18)
        assert not paused.overdue(sh(2026, 12, 1, 0, 0))
        resumed = paused.resume(CALENDAR, sh(2026, 11, 5, 12, 0))  # Thursday noon
        assert resumed.deadline == sh(2026, 11, 6, 6, 0)

    def test_resume_over_a_weekend_and_a_holiday(self) -> None:
        paused = SlaClock.start(CALENDAR, sh(2026, 9, 28, 10, 0), 1).pause(
            CALENDAR, sh(2026, 9, 28, 16, 0)
        )
        resumed = paused.resume(CALENDAR, sh(2026, 9, 30, 20, 0))  # Wednesday before the break
        assert resumed.deadline == sh(2026, 10, 8, 14, 0)

    def test_a_clock_paused_after_its_deadline_is_due_on_resume(self) -> None:
        clock = SlaClock.start(CALENDAR, sh(2026, 11, 2, 10, 0), 1)
        assert clock.overdue(sh(2026, 11, 3, 10, 0))
        paused = clock.pause(CALENDAR, sh(2026, 11, 4, 10, 0))
        assert paused.remaining == timedelta(0)
        assert paused.resume(CALENDAR, sh(2026, 11, 5, 9, 0)).deadline == sh(2026, 11, 5, 9, 0)

    def test_pause_and_resume_are_idempotent(self) -> None:
        clock = SlaClock.start(CALENDAR, sh(2026, 11, 2, 10, 0), 1)
        assert clock.resume(CALENDAR, sh(2026, 11, 2, 11, 0)) == clock
        paused = clock.pause(CALENDAR, sh(2026, 11, 2, 11, 0))
        assert paused.pause(CALENDAR, sh(2026, 11, 2, 12, 0)) == paused
