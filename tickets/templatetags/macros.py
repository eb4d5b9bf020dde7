"""The reply composer's macro picker: ``{% load macros %}{% macro_picker ticket as picker %}``."""

from __future__ import annotations

from dataclasses import dataclass, field

from django import template

from helpdesk.permissions import Capability, acting_agent_for_request
from tickets import macros
from tickets.models import Macro, Ticket

register = template.Library()


@dataclass(frozen=True)
class MacroPicker:
    macros: list[Macro] = field(default_factory=list)
    # Whether the person may keep the list (the settings page link when there is none).
    may_manage: bool = False
    # Set when the ticket has no linked order and some macro names the order's details.
    no_order: bool = False


@register.simple_tag(takes_context=True)
def macro_picker(context: template.Context, ticket: Ticket) -> MacroPicker:
    """The active macros offered on ``ticket``, in one query."""
    acting = acting_agent_for_request(context["request"])
    offered = list(macros.active_macros().only("pk", "name", "body"))
    uses_order = any(
        name.startswith("order.") for row in offered for name in macros.variables_used(row.body)
    )
    return MacroPicker(
        macros=offered,
        may_manage=acting.can(Capability.SUPERVISE),
        no_order=ticket.order_id is None and uses_order,
    )
