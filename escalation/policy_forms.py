"""The form of the escalation settings page. Numbers are checked for their shape here; the
phrases and the budget stay text, for ``escalation.policy_settings`` to tidy and check against
the currency."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from escalation import policy_settings
from escalation.models import EscalationPolicy, Trigger
from helpdesk.money import rounded


def _percent(label: Any, help_text: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        help_text=help_text,
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )


def _whole(field: str, label: Any, help_text: Any = "") -> forms.IntegerField:
    low, high = policy_settings.WHOLE_NUMBERS[field]
    return forms.IntegerField(label=label, help_text=help_text, min_value=low, max_value=high)


def _switch(label: Any) -> forms.BooleanField:
    return forms.BooleanField(label=label, required=False)


class EscalationPolicyForm(forms.Form):
    threshold_percent = _percent(
        _("Escalation rate threshold (%)"),
        _("The most complaint tickets, in percent, that should reach a supervisor."),
    )
    min_complaints = _whole(
        "min_complaints",
        _("Fewest complaint tickets before alerting"),
        _("With fewer complaint tickets in the last 7 days, a rate is too thin to alert on."),
    )
    on_over_limit = _switch(Trigger.OVER_LIMIT.label)
    on_customer_request = _switch(Trigger.CUSTOMER_REQUEST.label)
    supervisor_phrases = forms.CharField(
        label=_("Phrases that ask for a supervisor"),
        help_text=_(
            "One a line. A customer's message with one of them escalates the ticket. "
            "At most 100 phrases of at most 100 characters; repeats are kept once."
        ),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
    )
    on_manual = _switch(Trigger.MANUAL.label)
    on_first_response_breach = _switch(Trigger.FIRST_RESPONSE_BREACH.label)
    on_resolution_breach = _switch(Trigger.RESOLUTION_BREACH.label)
    on_repeat_contact = _switch(Trigger.REPEAT_CONTACT.label)
    repeat_contacts = _whole("repeat_contacts", _("Contacts"))
    repeat_days = _whole("repeat_days", _("Within days"))
    monthly_budget_amount = forms.CharField(
        label=_("Monthly remedy budget"),
        required=False,
        max_length=24,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    budget_currency = forms.CharField(
        label=_("Currency"),
        required=False,
        max_length=3,
        widget=forms.TextInput(attrs={"size": 4, "autocomplete": "off"}),
    )
    defect_rate_percent = _percent(
        _("Defect rate limit (%)"),
        _(
            "A product or supplier whose complaint orders pass this share of its orders in 30 "
            "days raises an alert."
        ),
    )
    defect_min_orders = _whole(
        "defect_min_orders",
        _("Fewest orders before alerting"),
        _("Products and suppliers with fewer orders in 30 days are not judged."),
    )

    @classmethod
    def initial_of(cls, policy: EscalationPolicy) -> dict[str, Any]:
        """The saved settings as the fields show them."""
        initial: dict[str, Any] = {
            field: getattr(policy, field) for field in cls.base_fields if hasattr(policy, field)
        }
        initial["supervisor_phrases"] = "\n".join(policy.supervisor_phrases or [])
        if policy.monthly_budget_amount is not None and policy.budget_currency:
            initial["monthly_budget_amount"] = str(
                rounded(policy.monthly_budget_amount, policy.budget_currency)
            )
        else:
            initial["monthly_budget_amount"] = ""
        return initial
