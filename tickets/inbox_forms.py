"""The inbox's query string, read strictly: a value that is not one of the choices is a form
error shown on the page (and that filter is left out), never a 500."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from tickets import inbox
from tickets.models import Channel, Group, Ticket
from tickets.people import Person

SELECTED = mark_safe(" selected")


class PlainSelect(forms.Select):
    """A ``<select>`` of flat choices drawn in Python. Django's own draws every option through
    two templates: with the merchant's agents in the assignee filter that was a fifth of the
    inbox's time, on the page agents load most."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        chosen = set(self.format_value(value))
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((key, SELECTED if key in chosen else "", label) for key, label in self._flat()),
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            options,
        )

    def _flat(self) -> list[tuple[str, Any]]:
        return [("" if key is None else str(key), label) for key, label in self.choices]


class InboxForm(forms.Form):
    view = forms.ChoiceField(required=False, label=_("View"), widget=PlainSelect)
    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    status = forms.ChoiceField(required=False, label=_("Status"), widget=PlainSelect)
    channel = forms.ChoiceField(required=False, label=_("Channel"), widget=PlainSelect)
    priority = forms.ChoiceField(required=False, label=_("Priority"), widget=PlainSelect)
    tag = forms.CharField(required=False, max_length=60, label=_("Tag"))
    group = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label=_("Group"), widget=PlainSelect
    )
    assignee = forms.ChoiceField(required=False, label=_("Assignee"), widget=PlainSelect)
    older = forms.CharField(required=False, max_length=40, label=_("Page"))
    newer = forms.CharField(required=False, max_length=40, label=_("Page"))
    mine = forms.CharField(required=False, max_length=1)  # links from before the views: ?mine=1

    def __init__(self, data: Any, *, groups: list[Group], people: list[Person]) -> None:
        super().__init__(data)
        every = [("", _("Any"))]
        self.fields["view"].choices = [(key, view.label) for key, view in inbox.VIEWS.items()]
        self.fields["status"].choices = [
            ("", _("The view's")),
            *Ticket.Status.choices,
            ("all", _("Any status")),
        ]
        self.fields["channel"].choices = every + Channel.choices
        self.fields["priority"].choices = every + Ticket.Priority.choices
        self.fields["group"].choices = every + [(g.pk, g.name) for g in groups]
        self.fields["assignee"].choices = [
            *every,
            ("me", _("Me")),
            ("none", _("Nobody")),
            *[(str(p.user_id), p.name) for p in people],
        ]

    def clean_older(self) -> inbox.Cursor | None:
        return self._cursor("older")

    def clean_newer(self) -> inbox.Cursor | None:
        return self._cursor("newer")

    def _cursor(self, name: str) -> inbox.Cursor | None:
        text = self.cleaned_data.get(name, "")
        if not text:
            return None
        cursor = inbox.Cursor.decode(text)
        if cursor is None:
            raise forms.ValidationError(_("That page link is not valid; showing the first page."))
        return cursor

    def value(self, name: str, default: Any = "") -> Any:
        """The field's clean value, or ``default`` when it was missing or not valid."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        value = self.cleaned_data.get(name)
        return default if value in (None, "") else value

    def chosen_view(self) -> inbox.View:
        if self.value("mine") == "1" and not self.value("view"):
            return inbox.VIEWS["mine"]
        return inbox.VIEWS[self.value("view", inbox.DEFAULT_VIEW)]

    def filters(self) -> inbox.Filters:
        return inbox.Filters(
            status=self.value("status"),
            channel=self.value("channel"),
            priority=self.value("priority"),
            tag=self.value("tag").strip(),
            group_id=self.value("group", None),
            assignee=self.value("assignee"),
            query=self.value("q").strip(),
        )
