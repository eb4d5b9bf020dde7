"""The forms of the phone channel: a phone line's settings, a logged call, a call-back."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from channels_in.models import CallLog
from channels_in.phone_lines import MAX_GREETING_CHARS, MAX_RING_SECONDS, MIN_RING_SECONDS
from helpdesk.tenancy import require_tenant
from tickets.models import Group


def greeting_field(code: str) -> str:
    return f"greeting_{code.replace('-', '_')}"


class PhoneLineForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    number = forms.CharField(
        label=_("Phone number"),
        max_length=32,
        help_text=_("The number customers call, with its country code: +86 21 5555 0100."),
    )
    auth_token = forms.CharField(
        label=_("Twilio auth token"),
        max_length=128,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Checks the signature of every request from Twilio. Stored encrypted; leave empty "
            "to keep the saved one."
        ),
    )
    group = forms.ModelChoiceField(
        label=_("Ring the agents of"),
        queryset=Group.objects.none(),
        required=False,
        empty_label=_("The default group"),
    )
    ring_seconds = forms.IntegerField(
        label=_("Ring for (seconds)"),
        min_value=MIN_RING_SECONDS,
        max_value=MAX_RING_SECONDS,
        initial=20,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = Group.objects.filter(persona="").order_by("name")
        for code, _name in settings.LANGUAGES:
            self.fields[greeting_field(code)] = forms.CharField(
                label=_("Greeting (%(language)s)")
                % {"language": translation.get_language_info(code)["name_local"]},
                max_length=MAX_GREETING_CHARS,
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
            )

    def greeting_fields(self) -> list[forms.BoundField]:
        return [self[greeting_field(code)] for code, _name in settings.LANGUAGES]

    def greetings(self) -> dict[str, str]:
        return {
            code: self.cleaned_data.get(greeting_field(code), "")
            for code, _name in settings.LANGUAGES
        }


def local_moment(value: datetime) -> datetime:
    """A datetime-local value, read in the merchant's time zone (the form field read it in the
    request's, which an agent abroad may not share)."""
    if timezone.is_aware(value):
        value = timezone.make_naive(value)
    return value.replace(tzinfo=ZoneInfo(require_tenant().time_zone))


class CallLogForm(forms.Form):
    direction = forms.ChoiceField(
        label=_("Call"), choices=CallLog.Direction.choices, initial=CallLog.Direction.OUTBOUND
    )
    number = forms.CharField(label=_("Number"), max_length=32)
    outcome = forms.ChoiceField(label=_("Outcome"), choices=CallLog.Outcome.choices)
    minutes = forms.IntegerField(label=_("Minutes"), min_value=0, max_value=24 * 60, initial=0)
    seconds = forms.IntegerField(label=_("Seconds"), min_value=0, max_value=59, initial=0)
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea)
    call_back = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def duration_seconds(self) -> int:
        return self.cleaned_data["minutes"] * 60 + self.cleaned_data["seconds"]


class CallBackForm(forms.Form):
    due_at = forms.DateTimeField(
        label=_("Call back at"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    number = forms.CharField(label=_("Number"), max_length=32, required=False)
    note = forms.CharField(label=_("Note"), max_length=500, required=False)

    def due(self) -> datetime:
        return local_moment(self.cleaned_data["due_at"])
