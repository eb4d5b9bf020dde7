"""The settings area in templates: the top bar's link (for people whose role opens any
section) and audit events' changes in words."""

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


def _words(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_words(item) for item in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_words(item)}" for key, item in value.items())
    if value is None or value == "":
        return "—"
    return str(value)


@register.simple_tag
def audit_changes(event: Any) -> str:
    """An audit event's changes on one line: "old → new" first, then the other details."""
    changes = dict(event.changes or {})
    parts = []
    if "old" in changes or "new" in changes:
        old, new = changes.pop("old", None), changes.pop("new", None)
        parts.append(f"{_words(old)} → {_words(new)}" if old is not None else _words(new))
    parts.extend(f"{key}: {_words(value)}" for key, value in changes.items())
    return "; ".join(parts)
