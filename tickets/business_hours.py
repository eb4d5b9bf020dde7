"""When a group is open: its weekly hours in the merchant's time zone, less its holidays.

A ``Calendar`` answers three questions: is the group open at a moment, when does it open next,
and when is a number of business minutes after a moment (a service-level target's due time).
It walks the calendar a day at a time, never a minute at a time, and counts real elapsed time:
on the night clocks spring forward in New York, hours of 00:00-24:00 hold 23 hours.

A local time that does not exist (02:30 when clocks jump from 02:00 to 03:00) is read as the
moment the clock would have shown had it not jumped (03:30); a time that happens twice is its
first occurrence.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.tenancy import require_tenant

if TYPE_CHECKING:
    from tickets.models import Group

logger = logging.getLogger(__name__)

DAYS_IN_WEEK = 7
MINUTES_IN_DAY = 24 * 60
# How far ahead a calendar looks for an opening before it concludes the group never opens.
LOOKAHEAD_DAYS = 366
# add_business_minutes walks at most this far (a 60-day target at one hour a week needs ~28
# years, which no merchant sets); past it the rest is counted on the wall clock.
LONGEST_WALK_DAYS = 20 * 366

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

# One day's opening hours: (start, end) pairs in minutes after local midnight, end up to 1440.
DayHours = tuple[tuple[int, int], ...]


def _minutes_of(text: object, *, is_end: bool) -> int | None:
    """ "HH:MM" as minutes after midnight ("24:00" only as an end), or None when malformed."""
    if not isinstance(text, str):
        return None
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59:
        return None
    if hours == 24 and minutes == 0 and is_end:
        return MINUTES_IN_DAY
    if hours > 23:
        return None
    return hours * 60 + minutes


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day_hours(value: object) -> tuple[DayHours, ...]:
    """The week in minutes, from the JSON format or from minute pairs; BadInput when malformed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadInput(_("The weekly hours are not valid JSON"), field="weekly_hours") from exc
    if not isinstance(value, list | tuple) or len(value) != DAYS_IN_WEEK:
        raise BadInput(
            _("Weekly hours need seven days, Monday first"),
            field="weekly_hours",
        )
    week: list[DayHours] = []
    for day_number, day in enumerate(value):
        if not isinstance(day, list | tuple):
            raise BadInput(_("Each day's hours must be a list"), field="weekly_hours")
        pairs: list[tuple[int, int]] = []
        for pair in day:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise BadInput(
                    _('Each opening must be a pair such as ["09:00", "18:00"]'),
                    field="weekly_hours",
                )
            if all(isinstance(item, int) and not isinstance(item, bool) for item in pair):
                start, end = pair[0], pair[1]
                if not (0 <= start < MINUTES_IN_DAY and 0 < end <= MINUTES_IN_DAY):
                    start = end = None
            else:
                start = _minutes_of(pair[0], is_end=False)
                end = _minutes_of(pair[1], is_end=True)
            if start is None or end is None:
                raise BadInput(
                    _('Opening times are written "HH:MM", from 00:00 to 24:00'),
                    field="weekly_hours",
                )
            if start >= end:
                raise BadInput(
                    _("An opening must end after it starts (%(start)s-%(end)s)")
                    % {"start": _clock_text(start), "end": _clock_text(end)},
                    field="weekly_hours",
                )
            pairs.append((start, end))
        pairs.sort()
        for (_start, end), (next_start, _end) in pairwise(pairs):
            if next_start < end:
                raise BadInput(
                    _("Openings on %(weekday)s overlap") % {"weekday": WEEKDAYS[day_number]},
                    field="weekly_hours",
                )
        week.append(tuple(pairs))
    return tuple(week)


def day_hours_text(openings: list[list[str]]) -> str:
    """A day's stored hours as the admin types them: "09:00-12:00, 13:00-18:00"."""
    return ", ".join(f"{start}-{end}" for start, end in openings)


def read_weekly_hours(value: object) -> list[list[list[str]]]:
    """The weekly hours as stored: seven days, Monday first, each a sorted list of non-overlapping
    ["HH:MM", "HH:MM"] openings ("24:00" ends at midnight). A JSON text is read first; anything
    malformed raises BadInput(field="weekly_hours"). An all-closed week is accepted here."""
    return [
        [[_clock_text(start), _clock_text(end)] for start, end in day] for day in _day_hours(value)
    ]


@dataclass(frozen=True)
class Calendar:
    """A group's opening hours in the merchant's time zone.

    ``weekly_hours`` holds seven days, Monday first, each a tuple of (start, end) minutes after
    local midnight; the JSON format (["09:00", "18:00"] pairs) is accepted and converted.
    ``holidays`` are local dates closed all day. An ``always_open`` calendar ignores both.
    """

    zone: ZoneInfo
    always_open: bool = True
    weekly_hours: tuple[DayHours, ...] = field(
        default_factory=lambda: tuple(() for _day in range(DAYS_IN_WEEK))
    )
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.zone, str):
            object.__setattr__(self, "zone", ZoneInfo(self.zone))
        object.__setattr__(self, "weekly_hours", _day_hours(self.weekly_hours))
        object.__setattr__(self, "holidays", frozenset(self.holidays))

    @property
    def never_opens(self) -> bool:
        """Not around the clock and with no hours on any day of the week."""
        return not self.always_open and not any(self.weekly_hours)

    # --- the walk -------------------------------------------------------------------------

    def _local_moment(self, day: date, minutes: int) -> datetime:
        if minutes >= MINUTES_IN_DAY:
            day, minutes = day + timedelta(days=1), minutes - MINUTES_IN_DAY
        local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.zone)
        return local.astimezone(UTC)

    def openings_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's openings as (start, end) moments in UTC; none on a holiday."""
        if day in self.holidays:
            return []
        spells = []
        for start, end in self.weekly_hours[day.weekday()]:
            opens, closes = self._local_moment(day, start), self._local_moment(day, end)
            if closes > opens:  # an opening inside a skipped hour has no length
                spells.append((opens, closes))
        return spells

    def _openings_from(self, at: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Openings that end after ``at``, in order, over the next ``days`` local days; an
        opening already under way starts at ``at``."""
        first_day = at.astimezone(self.zone).date()
        # The day before too: where local midnight is skipped, its last opening ends after it.
        for offset in range(-1, days):
            for opens, closes in self.openings_on(first_day + timedelta(days=offset)):
                if closes > at:
                    yield max(opens, at), closes

    # --- the questions --------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """Whether the group is open at the moment ``at``."""
        if self.always_open:
            return True
        for opens, _closes in self._openings_from(at, 1):
            return opens <= at
        return False

    def next_opening(self, at: datetime) -> datetime | None:
        """``at`` itself when open, else the next moment the group opens; None when it does not
        open within a year (no hours at all, or closed by holidays throughout)."""
        if self.always_open:
            return at
        if self.never_opens:
            return None
        for opens, _closes in self._openings_from(at, LOOKAHEAD_DAYS):
            return opens
        return None

    def add_business_minutes(self, start: datetime, minutes: int) -> datetime:
        """The moment ``minutes`` of opening time after ``start``: the clock runs only while the
        group is open. Always open: plain wall-clock arithmetic.

        A calendar that never opens (no hours, or a year of holidays ahead) has no such moment:
        the minutes are then counted on the wall clock, so a clock still shows a due time.
        """
        if self.always_open or minutes <= 0 or self.never_opens:
            return start + timedelta(minutes=minutes)
        left = timedelta(minutes=minutes)
        cursor = start
        closed_since = start
        for opens, closes in self._openings_from(start, LONGEST_WALK_DAYS):
            if opens - closed_since > timedelta(days=LOOKAHEAD_DAYS):
                break  # a year without an opening: it does not open any more
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
            cursor = closed_since = closes
        return cursor + left

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much opening time lies between ``start`` and ``end`` (zero when end <= start)."""
        if end <= start:
            return timedelta(0)
        if self.always_open:
            return end - start
        total = timedelta(0)
        days = (end.astimezone(self.zone).date() - start.astimezone(self.zone).date()).days + 1
        for opens, closes in self._openings_from(start, min(days, LONGEST_WALK_DAYS)):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total


def calendar_for(group: Group | None) -> Calendar:
    """The group's calendar in the active merchant's time zone, with its holidays from the
    database; no group, or a group open around the clock, is always open."""
    zone = ZoneInfo(require_tenant().time_zone)
    if group is None or group.always_open:
        return Calendar(zone=zone, always_open=True)
    try:
        week = _day_hours(group.weekly_hours)
    except BadInput:
        # Settings validate the hours before they are stored: a malformed row is a bug. Keep
        # the clocks running rather than calling the group closed forever.
        logger.warning("group %s has malformed weekly hours; treated as always open", group.pk)
        return Calendar(zone=zone, always_open=True)
    from tickets.models import GroupHoliday

    holidays = GroupHoliday.objects.filter(group=group).values_list("date", flat=True)
    return Calendar(zone=zone, always_open=False, weekly_hours=week, holidays=frozenset(holidays))
