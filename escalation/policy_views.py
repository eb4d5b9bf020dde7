"""The escalation settings page, /settings/escalation/: the rate a merchant aims to stay under
and what it means, which triggers escalate a ticket, the remedy budget and the defect-rate
alert. Needs ``MANAGE_EMPOWERMENT``."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from escalation import escalations, policy_settings
from escalation.policy_forms import EscalationPolicyForm
from helpdesk.errors import BadInput
from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.views import tenant_required

SECTION = "settings:escalation"
# The rolling window the rate is alerted on (escalation.metrics, escalation.alerts).
ALERT_WINDOW_DAYS = 7


def plain_number(value: Decimal) -> str:
    """3.00 as "3", 2.50 as "2.5": a percentage as people say it."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@tenant_required
def escalation_settings(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    status = 200
    if request.method != "POST":
        form = EscalationPolicyForm(initial=EscalationPolicyForm.initial_of(escalations.policy()))
    else:
        form = EscalationPolicyForm(request.POST)
        if form.is_valid():
            try:
                policy_settings.update_escalation_policy(acting_agent=acting, **form.cleaned_data)
            except BadInput as exc:
                form_error(form, exc)
            else:
                messages.success(request, _("The escalation settings are saved."))
                return redirect(SECTION)
        status = 400
    policy = escalations.policy()
    return render_settings(
        request,
        acting,
        "settings/escalation.html",
        {
            "form": form,
            "policy": policy,
            "threshold": plain_number(policy.threshold_percent),
            "defect_rate": plain_number(policy.defect_rate_percent),
            "window_days": ALERT_WINDOW_DAYS,
            "tenant_currency": request.tenant.default_currency,
        },
        section=SECTION,
        status=status,
    )
