"""People by name on the agent's pages.

``{% load people %}{% person user %}`` shows a member's display name in the active merchant.
The names of all the merchant's members are read once per request, so a list of fifty tickets
costs one query, not fifty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import template

from helpdesk.permissions import Capability, acting_agent_for_request
from tickets import people
from tickets.models import Group, Ticket

register = template.Library()

_NAMES_ATTRIBUTE = "_display_names"


def names_for_request(request: Any) -> dict[int, str]:
    """The merchant's members' display names, read once per request (views and tags share it)."""
    names = getattr(request, _NAMES_ATTRIBUTE, None)
    if names is None:
        names = people.display_names()
        setattr(request, _NAMES_ATTRIBUTE, names)
    return names


def _names(context: template.Context) -> dict[int, str]:
    request = context.get("request")
    if request is None:
        return people.display_names()
    return names_for_request(request)


@register.simple_tag(takes_context=True)
def person(context: template.Context, user: Any, empty: str = "—") -> str:
    """A person's display name in the active merchant; ``empty`` for nobody."""
    if user is None or user == "":
        return empty
    return people.name_of(user, _names(context))


@dataclass(frozen=True)
class AssignPanel:
    """What the ticket page offers for its assignee and group."""

    can_take: bool
    can_reassign: bool
    people: list[people.Person] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)


@register.simple_tag(takes_context=True)
def assign_panel(context: template.Context, ticket: Ticket) -> AssignPanel:
    """``{% assign_panel ticket as panel %}``: take it, assign it to someone, move it."""
    acting = acting_agent_for_request(context["request"])
    can_reassign = acting.can(Capability.REASSIGN)
    mine = ticket.assignee_id == acting.user.pk
    can_take = (
        acting.membership is not None and not mine and (ticket.assignee_id is None or can_reassign)
    )
    if not can_reassign:
        return AssignPanel(can_take=can_take, can_reassign=False)
    return AssignPanel(
        can_take=can_take,
        can_reassign=True,
        people=people.assignable_people(ticket=ticket),
        groups=people.groups_to_move_to(acting),
    )


@register.simple_tag(takes_context=True)
def bulk_choices(context: template.Context) -> dict[str, Any]:
    """``{% bulk_choices as bulk %}``: whom the list's bulk action may assign to."""
    acting = acting_agent_for_request(context["request"])
    workers = people.ticket_workers() if acting.can(Capability.REASSIGN) else []
    return {"can_reassign": acting.can(Capability.REASSIGN), "people": workers}
