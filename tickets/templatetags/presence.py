"""The header's presence switch: ``{% load presence %}{% my_presence as presence %}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template

from helpdesk.errors import PermissionDenied
from helpdesk.permissions import Capability, acting_agent_for_request
from tickets.models import AgentPresence
from tickets.presence import presence_of

register = template.Library()


@dataclass(frozen=True)
class PresenceSwitch:
    user_id: int
    status: str
    choices: list[tuple[str, str]]


@register.simple_tag(takes_context=True)
def my_presence(context: dict[str, Any]) -> PresenceSwitch | None:
    """The signed-in person's presence in the active merchant, or None (no switch shown) when
    they do not work tickets there as a member."""
    request = context.get("request")
    if getattr(request, "tenant", None) is None or not request.user.is_authenticated:
        return None
    try:
        acting = acting_agent_for_request(request)
    except PermissionDenied:
        return None
    if acting.membership is None or not acting.can(Capability.WORK_TICKETS):
        return None
    status = presence_of([request.user.pk])[request.user.pk]
    return PresenceSwitch(
        user_id=request.user.pk, status=status, choices=AgentPresence.Status.choices
    )
