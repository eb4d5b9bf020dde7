"""Settings page for a merchant's API keys: list, create (token shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from helpdesk.api_keys import create_api_key, revoke_api_key
from helpdesk.models import ApiKey, ApiScope
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from helpdesk.views_settings import render_settings
from tickets.views import tenant_required

EXPIRY_CHOICES = [
    ("", gettext_lazy("Never (until revoked)")),
    ("30", gettext_lazy("After 30 days")),
    ("90", gettext_lazy("After 90 days")),
    ("365", gettext_lazy("After a year")),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("May"),
        choices=ApiScope.choices,
        initial=[ApiScope.READ],
        widget=forms.CheckboxSelectMultiple,
    )
    expires_in_days = forms.TypedChoiceField(
        label=gettext_lazy("Expires"),
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
    )


def _key_manager(request: HttpRequest) -> ActingAgent:
    acting_agent = acting_agent_for_request(request)
    require(acting_agent, Capability.MANAGE_API_KEYS)
    return acting_agent


@tenant_required
def api_keys(request: HttpRequest) -> HttpResponse:
    """The merchant's keys; a valid POST creates one and shows its token this once."""
    acting_agent = _key_manager(request)
    form = ApiKeyForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        key, new_token = create_api_key(
            acting_agent=acting_agent,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        messages.success(request, _("API key “%(name)s” created.") % {"name": key.name})
        form = ApiKeyForm()
    keys = (
        # A platform table, looked up before a tenant is known: its tenant is named here.
        ApiKey.objects.filter(tenant=request.tenant)
        .select_related("acting_user")
        .order_by("revoked_at", "-created_at")
    )
    response = render_settings(
        request,
        acting_agent,
        "settings/api_keys.html",
        {"form": form, "keys": keys, "new_token": new_token, "now": timezone.now()},
        section="api_keys",
    )
    if new_token:
        response["Cache-Control"] = "no-store"  # the token must not sit in any cache
    return response


@require_POST
@tenant_required
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    acting_agent = _key_manager(request)
    key = get_object_or_404(ApiKey, pk=pk, tenant=request.tenant)
    revoke_api_key(acting_agent=acting_agent, key=key)
    messages.success(request, _("API key “%(name)s” revoked.") % {"name": key.name})
    return redirect("api_keys")
