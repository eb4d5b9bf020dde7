"""A group's business hours in its merchant's time zone: open or closed at a moment, when it opens
next, and how many business minutes bring a due time, across nights, weekends, holidays and the
night New York's clocks spring forward."""

from __future__ import annotations

import time as stopwatch
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from helpdesk import tenancy
from helpdesk.errors import BadInput
from tickets.business_hours import Calendar, calendar_for, read_weekly_hours
from tickets.models import Group, GroupHoliday

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_SIX = [["09:00", "18:00"]]


def weekdays(hours: list[list[str]], weekend: list[list[str]] | None = None) -> list:
    return [hours] * 5 + [weekend or []] * 2


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


@pytest.fixture
def acme_hours(tenant_acme) -> Group:
    with tenancy.activate(tenant_acme):
        return Group.objects.create(
            name="After-sales 售后", always_open=False, weekly_hours=weekdays(NINE_TO_SIX)
        )


def test_a_shanghai_group_is_open_in_its_hours_and_closed_outside_them(tenant_acme, acme_hours):
    with tenancy.activate(tenant_acme):
        calendar = calendar_for(acme_hours)
    friday = (2026, 3, 6)
    assert calendar.is_open(at(SHANGHAI, *friday, 9, 0))
    assert calendar.is_open(at(SHANGHAI, *friday, 17, 59))
    assert not calendar.is_open(at(SHANGHAI, *friday, 8, 59))
    assert not calendar.is_open(at(SHANGHAI, *friday, 18, 0))  # closing time is closed
    assert not calendar.is_open(at(SHANGHAI, 2026, 3, 7, 11, 0))  # Saturday
    # 10:00 in New York on Friday is 23:00 in Shanghai: closed there.
    assert not calendar.is_open(at(NEW_YORK, *friday, 10, 0))


def test_next_opening_is_now_when_open_and_monday_morning_over_the_weekend(tenant_acme, acme_hours):
    with tenancy.activate(tenant_acme):
        calendar = calendar_for(acme_hours)
    open_now = at(SHANGHAI, 2026, 3, 6, 10, 30)
    assert calendar.next_opening(open_now) == open_now
    monday_nine = at(SHANGHAI, 2026, 3, 9, 9, 0)
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 6, 18, 0)) == monday_nine
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 8, 23, 59)) == monday_nine
    # Early on a weekday: later the same morning.
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 10, 7, 15)) == at(
        SHANGHAI, 2026, 3, 10, 9, 0
    )


def test_business_minutes_stop_at_closing_and_resume_on_monday(tenant_acme, acme_hours):
    with tenancy.activate(tenant_acme):
        calendar = calendar_for(acme_hours)
    friday_half_past_five = at(SHANGHAI, 2026, 3, 6, 17, 30)
    assert calendar.add_business_minutes(friday_half_past_five, 30) == at(
        SHANGHAI, 2026, 3, 6, 18, 0
    )
    assert calendar.add_business_minutes(friday_half_past_five, 60) == at(
        SHANGHAI, 2026, 3, 9, 9, 30
    )
    # Started on Saturday: the clock waits for Monday 09:00. A working day holds nine hours.
    assert calendar.add_business_minutes(at(SHANGHAI, 2026, 3, 7, 12, 0), 9 * 60 + 15) == at(
        SHANGHAI, 2026, 3, 10, 9, 15
    )
    assert calendar.business_time_between(
        friday_half_past_five, at(SHANGHAI, 2026, 3, 9, 9, 30)
    ) == timedelta(hours=1)


def test_a_holiday_closes_the_whole_local_day(tenant_acme, acme_hours):
    with tenancy.activate(tenant_acme):
        GroupHoliday.objects.create(group=acme_hours, date=date(2026, 3, 9), name="调休")
        calendar = calendar_for(acme_hours)
    assert not calendar.is_open(at(SHANGHAI, 2026, 3, 9, 10, 0))
    assert calendar.is_open(at(SHANGHAI, 2026, 3, 10, 10, 0))
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 6, 19, 0)) == at(SHANGHAI, 2026, 3, 10, 9, 0)
    assert calendar.add_business_minutes(at(SHANGHAI, 2026, 3, 6, 17, 30), 60) == at(
        SHANGHAI, 2026, 3, 10, 9, 30
    )


def test_another_groups_holiday_does_not_close_this_one(tenant_acme, acme_hours):
    with tenancy.activate(tenant_acme):
        presales = Group.objects.create(name="Pre-sales 售前")
        GroupHoliday.objects.create(group=presales, date=date(2026, 3, 9))
        calendar = calendar_for(acme_hours)
    assert calendar.is_open(at(SHANGHAI, 2026, 3, 9, 10, 0))


def test_a_new_york_group_keeps_new_york_hours(tenant_globex):
    with tenancy.activate(tenant_globex):
        group = Group.objects.create(
            name="Support", always_open=False, weekly_hours=weekdays([["09:00", "17:00"]])
        )
        calendar = calendar_for(group)
    assert calendar.zone == NEW_YORK
    assert calendar.is_open(at(NEW_YORK, 2026, 5, 1, 16, 0))  # Friday
    # The same moment is 04:00 on Saturday in Shanghai; the group's hours are New York's.
    assert calendar.is_open(at(SHANGHAI, 2026, 5, 2, 4, 0))
    assert calendar.next_opening(at(NEW_YORK, 2026, 5, 1, 17, 30)) == at(NEW_YORK, 2026, 5, 4, 9, 0)


def test_hours_over_midnight_run_on_without_a_break():
    overnight = [[]] * 7
    overnight[0] = [["22:00", "24:00"]]  # Monday night
    overnight[1] = [["00:00", "06:00"]]  # into Tuesday morning
    calendar = Calendar(zone=SHANGHAI, always_open=False, weekly_hours=overnight)
    monday_night = at(SHANGHAI, 2026, 3, 9, 23, 30)
    assert calendar.is_open(monday_night)
    assert calendar.is_open(at(SHANGHAI, 2026, 3, 10, 0, 0))
    assert calendar.is_open(at(SHANGHAI, 2026, 3, 10, 5, 59))
    assert not calendar.is_open(at(SHANGHAI, 2026, 3, 10, 6, 0))
    assert calendar.add_business_minutes(monday_night, 60) == at(SHANGHAI, 2026, 3, 10, 0, 30)
    # 30 minutes on Monday night, 6 hours to Tuesday 06:00, then the next Monday 22:00.
    assert calendar.add_business_minutes(monday_night, 30 + 6 * 60 + 15) == at(
        SHANGHAI, 2026, 3, 16, 22, 15
    )
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 10, 6, 0)) == at(
        SHANGHAI, 2026, 3, 16, 22, 0
    )


def test_the_week_new_york_springs_forward_counts_real_time():
    # Clocks jump from 02:00 to 03:00 on Sunday 8 March 2026.
    week = weekdays([["09:00", "17:00"]], weekend=[["00:00", "24:00"]])
    calendar = Calendar(zone=NEW_YORK, always_open=False, weekly_hours=week)
    sunday = at(NEW_YORK, 2026, 3, 8, 0, 0)
    # That Sunday holds 23 hours, not 24.
    assert calendar.business_time_between(sunday, at(NEW_YORK, 2026, 3, 9, 0, 0)) == timedelta(
        hours=23
    )
    assert calendar.add_business_minutes(sunday, 23 * 60) == at(NEW_YORK, 2026, 3, 9, 0, 0)
    assert calendar.add_business_minutes(sunday, 23 * 60 + 1) == at(NEW_YORK, 2026, 3, 9, 9, 1)
    assert calendar.is_open(at(NEW_YORK, 2026, 3, 8, 3, 30))
    # Friday 16:30 EST plus an hour: Monday 09:30 EDT, 13:30 UTC (Friday 16:30 was 21:30 UTC).
    friday = at(NEW_YORK, 2026, 3, 6, 16, 30)
    # 30 minutes on Friday, 24 hours on Saturday, 23 on Sunday, 30 minutes on Monday.
    monday = calendar.add_business_minutes(friday, 30 + 24 * 60 + 23 * 60 + 30)
    assert monday == at(NEW_YORK, 2026, 3, 9, 9, 30)
    assert monday.astimezone(ZoneInfo("UTC")).hour == 13
    weekdays_only = Calendar(
        zone=NEW_YORK, always_open=False, weekly_hours=weekdays([["09:00", "17:00"]])
    )
    assert weekdays_only.add_business_minutes(friday, 60) == at(NEW_YORK, 2026, 3, 9, 9, 30)
    assert weekdays_only.next_opening(friday + timedelta(hours=1)) == at(NEW_YORK, 2026, 3, 9, 9, 0)


def test_a_group_open_around_the_clock_counts_the_wall_clock(tenant_acme):
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="24/7", always_open=True)
        GroupHoliday.objects.create(group=group, date=date(2026, 3, 7))
        calendar = calendar_for(group)
        no_group = calendar_for(None)
    saturday_night = at(SHANGHAI, 2026, 3, 7, 3, 0)
    for each in (calendar, no_group):
        assert each.zone == SHANGHAI
        assert each.is_open(saturday_night)
        assert each.next_opening(saturday_night) == saturday_night
        assert each.add_business_minutes(saturday_night, 90) == saturday_night + timedelta(
            minutes=90
        )


def test_a_group_with_no_hours_never_opens_and_nothing_hangs(tenant_acme):
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="Closed", always_open=False)
        calendar = calendar_for(group)
    moment = at(SHANGHAI, 2026, 3, 6, 10, 0)
    assert not calendar.is_open(moment)
    assert calendar.next_opening(moment) is None
    # No due time exists: the minutes run on the wall clock instead.
    assert calendar.add_business_minutes(moment, 60) == moment + timedelta(minutes=60)


def test_a_year_of_holidays_means_no_next_opening():
    start = date(2026, 3, 9)
    holidays = frozenset(start + timedelta(days=n) for n in range(-1, 400))
    calendar = Calendar(
        zone=SHANGHAI, always_open=False, weekly_hours=weekdays(NINE_TO_SIX), holidays=holidays
    )
    began = stopwatch.monotonic()
    assert calendar.next_opening(at(SHANGHAI, 2026, 3, 9, 8, 0)) is None
    moment = at(SHANGHAI, 2026, 3, 9, 8, 0)
    assert calendar.add_business_minutes(moment, 60) == moment + timedelta(minutes=60)
    assert stopwatch.monotonic() - began < 2


def test_the_longest_target_on_office_hours_is_counted_day_by_day():
    calendar = Calendar(zone=SHANGHAI, always_open=False, weekly_hours=weekdays(NINE_TO_SIX))
    monday = at(SHANGHAI, 2026, 3, 9, 9, 0)
    # 60 days of business minutes at nine hours a day, five days a week: 160 working days.
    due = calendar.add_business_minutes(monday, 60 * 24 * 60)
    assert due == at(SHANGHAI, 2026, 10, 16, 18, 0)  # the 160th working day's close (a Friday)
    assert calendar.business_time_between(monday, due) == timedelta(days=60)


def test_weekly_hours_are_read_sorted_and_written_in_full():
    hours = read_weekly_hours(
        '[[["14:00", "18:00"], ["9:00", "12:00"]], [], [], [], [["00:00", "24:00"]], [], []]'
    )
    assert hours[0] == [["09:00", "12:00"], ["14:00", "18:00"]]
    assert hours[4] == [["00:00", "24:00"]]
    assert read_weekly_hours([[]] * 7) == [[]] * 7


@pytest.mark.parametrize(
    "week",
    [
        "not json",
        [[]] * 6,
        weekdays([["18:00", "09:00"]]),
        weekdays([["09:00", "09:00"]]),
        weekdays([["09:00", "12:00"], ["11:00", "18:00"]]),
        weekdays([["24:00", "24:00"]]),
        weekdays([["09:00", "24:30"]]),
        weekdays([["9h", "18h"]]),
        weekdays([["09:00"]]),
        [{"monday": []}] * 7,
    ],
)
def test_malformed_weekly_hours_are_refused(week):
    with pytest.raises(BadInput) as refused:
        read_weekly_hours(week)
    assert refused.value.extra == {"field": "weekly_hours"}
