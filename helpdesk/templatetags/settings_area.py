"""The settings area in templates: the top bar's link, for people whose role opens any
section. (Audit events are put into words by tickets.audit.)"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from helpdesk.errors import PermissionDenied
from helpdesk.permissions import acting_agent_for_request

register = template.Library()


@register.simple_tag(takes_context=True)
def settings_url(context: dict[str, Any]) -> str:
    """The settings area's address, or "" when this person's role opens none of it."""
    from helpdesk.views_settings import SECTIONS

    request = context.get("request")
    tenant = getattr(request, "tenant", None)
    if tenant is None or not request.user.is_authenticated:
        return ""
    try:
        acting = acting_agent_for_request(request)
    except PermissionDenied:
        return ""
    if any(acting.can(capability) for _name, _label, capability in SECTIONS):
        return reverse("settings:home")
    return ""
