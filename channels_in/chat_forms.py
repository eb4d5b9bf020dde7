"""The settings form of a live chat channel (channels_in.views_chat)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from channels_in.chat_channels import ChatSettings
from tickets.models import Group

PRECHAT_CHOICES = [
    ("name", _("Name")),
    ("email", _("Email")),
    ("phone", _("Phone")),
    ("order", _("Order number")),
]


class ChatChannelForm(forms.Form):
    name = forms.CharField(label=_("Channel name"), max_length=120)
    # One origin a line; checked by channels_in.chat_channels, whose reasons name the line.
    allowed_origins = forms.CharField(
        label=_("Store origins allowed to embed the chat"),
        required=False,
        help_text=_("One a line, the scheme and host only, such as https://shop.example.com"),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example.com"}),
    )
    prechat_fields = forms.MultipleChoiceField(
        label=_("Ask before the chat starts"),
        choices=PRECHAT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    prechat_required = forms.MultipleChoiceField(
        label=_("Required"),
        choices=PRECHAT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    persona_groups = forms.ModelMultipleChoiceField(
        label=_("Service styles the visitor may choose"),
        queryset=Group.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Groups with a persona (Settings → Groups); none: no choice is offered."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per request: the queryset reads the active merchant's groups.
        self.fields["persona_groups"].queryset = Group.objects.exclude(persona="").order_by("name")

    def chat_settings(self) -> ChatSettings:
        data = self.cleaned_data
        return ChatSettings(
            name=data["name"],
            allowed_origins=data["allowed_origins"].splitlines(),
            prechat_fields=list(data["prechat_fields"]),
            prechat_required=list(data["prechat_required"]),
            persona_group_ids=[group.pk for group in data["persona_groups"]],
        )
