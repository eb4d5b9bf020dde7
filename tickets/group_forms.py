"""Forms of a group's settings page. They read what the admin typed (comma-separated lists, a
day's hours as "09:00-12:00, 13:00-18:00") into the values the services in ``tickets.groups``
take; the services check the rules and say what is wrong."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from helpdesk.errors import BadInput
from tickets.business_hours import day_hours_text
from tickets.groups import (
    MAX_CHAT_CAPACITY,
    MAX_OUT_OF_HOURS_REPLY_LENGTH,
    MAX_TICKET_CAPACITY,
    ROUTABLE_CHANNELS,
)
from tickets.models import Channel, Group, GroupMember, RoutingStrategy

# Form field names of the week's days, Monday first as in ``Group.weekly_hours``.
DAY_FIELDS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Chinese input methods type full-width punctuation; read it as its ASCII twin.
_FULL_WIDTH = str.maketrans({"：": ":", "，": ",", "、": ",", "；": ",", ";": ",", "～": "-"})
_RANGE = re.compile(r"(?P<start>\S+?)\s*(?:-|–|—|~|至|到|to)\s*(?P<end>\S+)")
_CLOCK = re.compile(r"(?P<hours>\d{1,2})(?:[:.](?P<minutes>\d{2}))?")
_LANGUAGE_SEPARATORS = re.compile(r"[\s,，、;；]+")
_CATEGORY_SEPARATORS = re.compile(r"[,，、;；]+")


class FirstErrorForm(forms.Form):
    def first_error(self) -> BadInput:
        """The form's first error as the page shows it: "Tuesday: 25:00 is not a time"."""
        field, errors = next(iter(self.errors.items()))
        if field in self.fields:
            label = self.fields[field].label or field
            return BadInput(f"{label}: {errors[0]}", field=field)
        return BadInput(str(errors[0]), field=field)


def _minutes(text: str, *, is_end: bool) -> int:
    match = _CLOCK.fullmatch(text)
    hours = int(match["hours"]) if match else -1
    minutes = int(match["minutes"] or 0) if match else -1
    if not (0 <= hours <= 23 and 0 <= minutes <= 59) and (hours, minutes) != (24, 0):
        raise forms.ValidationError(gettext("%(time)s is not a time") % {"time": text})
    if hours == 24 and not is_end:
        raise forms.ValidationError(gettext("An opening cannot start at 24:00"))
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def read_day_hours(text: str) -> list[list[str]]:
    """One day's opening hours as typed ("9-12, 13:00-18:00"; empty: closed) in the stored
    format ``[["09:00", "12:00"], ["13:00", "18:00"]]``, sorted; openings that touch are joined.
    ValidationError says what is wrong: a time that is not one, an end before its start, an
    overlap."""
    openings: list[tuple[int, int]] = []
    for part in (text or "").translate(_FULL_WIDTH).split(","):
        part = part.strip()
        if not part:
            continue
        match = _RANGE.fullmatch(part)
        if match is None:
            raise forms.ValidationError(
                gettext("write an opening as 09:00-18:00, not “%(text)s”") % {"text": part}
            )
        start = _minutes(match["start"], is_end=False)
        end = _minutes(match["end"], is_end=True)
        if start >= end:
            raise forms.ValidationError(
                gettext("%(start)s-%(end)s ends before it starts")
                % {"start": _clock(start), "end": _clock(end)}
            )
        openings.append((start, end))
    openings.sort()
    joined: list[list[int]] = []
    for start, end in openings:
        if joined and start < joined[-1][1]:
            raise forms.ValidationError(
                gettext("%(first)s and %(second)s overlap")
                % {
                    "first": f"{_clock(joined[-1][0])}-{_clock(joined[-1][1])}",
                    "second": f"{_clock(start)}-{_clock(end)}",
                }
            )
        if joined and start == joined[-1][1]:
            joined[-1][1] = end
        else:
            joined.append([start, end])
    return [[_clock(start), _clock(end)] for start, end in joined]


def _split(text: str, separators: re.Pattern[str]) -> list[str]:
    return [item.strip() for item in separators.split(text or "") if item.strip()]


class RoutingForm(FirstErrorForm):
    strategy = forms.ChoiceField(label=_("Assignment"), choices=RoutingStrategy.choices)
    sticky = forms.BooleanField(label=_("Returning customers keep their agent"), required=False)
    languages = forms.CharField(
        label=_("Languages"),
        required=False,
        help_text=_("Language codes, comma-separated, e.g. zh, en. Empty: any language."),
        widget=forms.TextInput(attrs={"placeholder": "zh, en", "autocomplete": "off"}),
    )
    channels = forms.MultipleChoiceField(
        label=_("Channels"),
        required=False,
        choices=[(c, Channel(c).label) for c in ROUTABLE_CHANNELS],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: any channel."),
    )
    categories = forms.CharField(
        label=_("Product categories"),
        required=False,
        help_text=_("Comma-separated, e.g. Dishwashers, 冰箱. Empty: any product."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    persona = forms.CharField(
        label=_("Persona"),
        required=False,
        help_text=_(
            "A persona group (e.g. friendly, expert) takes only the customers who chose it. "
            "Empty: not a persona group."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "maxlength": 40}),
    )
    persona_description = forms.CharField(
        label=_("Persona description"),
        required=False,
        help_text=_("What customers read when they choose a persona."),
        widget=forms.TextInput(attrs={"maxlength": 200}),
    )

    @classmethod
    def initial_of(cls, group: Group) -> dict[str, Any]:
        return {
            "strategy": group.strategy,
            "sticky": group.sticky,
            "languages": ", ".join(group.languages),
            "channels": list(group.channels),
            "categories": ", ".join(group.categories),
            "persona": group.persona,
            "persona_description": group.persona_description,
        }

    def clean_languages(self) -> list[str]:
        return _split(self.cleaned_data["languages"], _LANGUAGE_SEPARATORS)

    def clean_categories(self) -> list[str]:
        return _split(self.cleaned_data["categories"], _CATEGORY_SEPARATORS)


def _day_field(day: int) -> forms.CharField:
    return forms.CharField(
        label=WEEKDAYS[day],
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": _("Closed all day"), "autocomplete": "off"}),
    )


class HoursForm(FirstErrorForm):
    always_open = forms.BooleanField(label=_("Open around the clock (24/7)"), required=False)
    monday = _day_field(0)
    tuesday = _day_field(1)
    wednesday = _day_field(2)
    thursday = _day_field(3)
    friday = _day_field(4)
    saturday = _day_field(5)
    sunday = _day_field(6)
    out_of_hours_reply = forms.CharField(
        label=_("Out-of-hours reply"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": MAX_OUT_OF_HOURS_REPLY_LENGTH}),
        help_text=_(
            "Sent to customers who write while the group is closed; {opens_at} becomes when "
            "it opens again. Empty: the helpdesk's own message."
        ),
    )

    @classmethod
    def initial_of(cls, group: Group) -> dict[str, Any]:
        week = group.weekly_hours or [[] for _day in DAY_FIELDS]
        return {
            "always_open": group.always_open,
            "out_of_hours_reply": group.out_of_hours_reply,
            **{name: day_hours_text(week[i]) for i, name in enumerate(DAY_FIELDS)},
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        week = []
        for name in DAY_FIELDS:
            if name not in cleaned:  # its own check failed
                return cleaned
            try:
                week.append(read_day_hours(cleaned[name]))
            except forms.ValidationError as exc:
                self.add_error(name, exc)
                return cleaned
        cleaned["weekly_hours"] = week
        return cleaned


class HolidayForm(FirstErrorForm):
    date = forms.DateField(
        label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    name = forms.CharField(
        label=_("Name"),
        required=False,
        widget=forms.TextInput(attrs={"maxlength": 100, "placeholder": _("e.g. Spring Festival")}),
    )


class CapacityForm(FirstErrorForm):
    chat_capacity = forms.IntegerField(
        label=_("Live conversations at once"), min_value=0, max_value=MAX_CHAT_CAPACITY
    )
    ticket_capacity = forms.IntegerField(
        label=_("Open tickets at once"), min_value=0, max_value=MAX_TICKET_CAPACITY
    )

    @classmethod
    def initial_of(cls, member: GroupMember) -> dict[str, Any]:
        return {"chat_capacity": member.chat_capacity, "ticket_capacity": member.ticket_capacity}
