"""Forms of the remedy limits settings pages. Amounts and shares stay text here: the services
in ``escalation.policies`` check them against the currency and say precisely what is wrong."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from escalation.models import RemedyKind
from escalation.policies import MAX_CUSTOMER_PERIOD_DAYS, MAX_EXECUTION_URL_CHARS
from helpdesk.models import Membership, Role


class PolicyForm(forms.Form):
    customer_period_days = forms.IntegerField(
        label=_("Customer period (days)"),
        min_value=1,
        max_value=MAX_CUSTOMER_PERIOD_DAYS,
        help_text=_("The per-customer limits count what a customer received in this many days."),
    )
    # Checked by escalation.policies (scheme, public address, usual port), whose reasons are
    # more precise than a URL field's.
    execution_url = forms.CharField(
        label=_("Execution URL"),
        max_length=MAX_EXECUTION_URL_CHARS,
        required=False,
        help_text=_(
            "Each remedy granted is posted here, signed, for your order system to carry out. "
            "Leave empty to carry out remedies by hand."
        ),
        widget=forms.URLInput(attrs={"placeholder": "https://shop.example.com/helpdesk/remedies"}),
    )


def _cap(label: Any, help_text: Any = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=24,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


class LimitCapsForm(forms.Form):
    """The caps of one limit; an empty field is no cap of that sort."""

    per_grant_max_amount = _cap(
        _("Most per grant"),
        _("For free orders: the largest order value that may be made free."),
    )
    order_share_max_percent = _cap(_("Most share of the order (%)"))
    per_agent_day_max_amount = _cap(_("Most per person per day"))
    per_customer_period_max_amount = _cap(_("Most per customer in the period"))

    def caps(self) -> dict[str, str]:
        return {
            field: self.cleaned_data[field]
            for field in (
                "per_grant_max_amount",
                "order_share_max_percent",
                "per_agent_day_max_amount",
                "per_customer_period_max_amount",
            )
        }


class LimitForm(LimitCapsForm):
    """A new limit: for whom, which remedy, in which currency, and its caps."""

    who = forms.ChoiceField(label=_("For"))
    kind = forms.ChoiceField(label=_("Remedy"), choices=RemedyKind.choices)
    currency = forms.CharField(
        label=_("Currency"),
        max_length=3,
        widget=forms.TextInput(attrs={"size": 4, "autocomplete": "off"}),
    )

    field_order = ["who", "kind", "currency"]

    def __init__(self, *args: Any, memberships: list[Membership], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.people = {str(m.user_id): m.user for m in memberships}
        self.fields["who"].choices = [
            (_("Roles"), [(f"role:{value}", label) for value, label in Role.choices]),
            (
                _("People"),
                [
                    (f"user:{m.user_id}", m.display_name or m.user.get_username())
                    for m in memberships
                ],
            ),
        ]

    def holder(self) -> tuple[str, Any]:
        """(role, None) or ("", user) of the cleaned ``who``."""
        sort, _sep, value = self.cleaned_data["who"].partition(":")
        if sort == "role":
            return value, None
        return "", self.people[value]
