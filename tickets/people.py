"""Reads about the merchant's people: how they are named, and who may be given a ticket.

People are shown by the display name of their membership in the active merchant (one account
may be "李娜" at one merchant and "Lina" at another), else by their username.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from helpdesk.models import Membership, Role
from helpdesk.permissions import RULES, ActingAgent, Capability
from helpdesk.tenancy import require_tenant
from tickets.models import Group, GroupMember, Ticket


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    in_group: bool = False


def display_names(user_ids: Iterable[int] | None = None) -> dict[int, str]:
    """Each member's name in the active merchant by user id (all members when ``user_ids`` is
    None), in one query; a member without a display name is named by their username."""
    members = Membership.objects.filter(tenant=require_tenant())
    if user_ids is not None:
        members = members.filter(user_id__in=list(user_ids))
    return {
        user_id: display_name or username
        for user_id, display_name, username in members.values_list(
            "user_id", "display_name", "user__username"
        )
    }


def name_of(user: Any, names: dict[int, str]) -> str:
    """How ``user`` is shown: their display name in ``names``, else their username (a former
    member keeps the name they had as a user)."""
    if user is None:
        return ""
    return names.get(user.pk) or user.get_username()


def _works_ticket_anywhere(role: str, *, ticket: Ticket) -> bool:
    """Whether a member with ``role`` may work ``ticket`` without belonging to its group."""
    capabilities = RULES.get(role, frozenset())
    if Capability.WORK_TICKETS not in capabilities:
        return False
    return (
        Capability.WORK_ALL_GROUPS in capabilities
        or ticket.group_id is None
        or require_tenant().agents_work_all_groups
    )


def assignable_people(*, ticket: Ticket) -> list[Person]:
    """Who a ticket may be given to: members of its group first, then the merchant's other
    members who may work it, each by name."""
    in_group = set(
        GroupMember.objects.filter(group_id=ticket.group_id).values_list("user_id", flat=True)
        if ticket.group_id is not None
        else ()
    )
    members = Membership.objects.filter(tenant=require_tenant()).values_list(
        "user_id", "display_name", "user__username", "role"
    )
    people = [
        Person(user_id=user_id, name=display_name or username, in_group=user_id in in_group)
        for user_id, display_name, username, role in members
        if user_id in in_group or _works_ticket_anywhere(role, ticket=ticket)
    ]
    return sorted(people, key=lambda p: (not p.in_group, p.name.casefold()))


def ticket_workers() -> list[Person]:
    """The merchant's members who work tickets, by name: whom the list's bulk action offers."""
    roles = [role for role in Role.values if Capability.WORK_TICKETS in RULES.get(role, ())]
    members = Membership.objects.filter(tenant=require_tenant(), role__in=roles).values_list(
        "user_id", "display_name", "user__username"
    )
    people = [Person(user_id=u, name=d or n) for u, d, n in members]
    return sorted(people, key=lambda p: p.name.casefold())


def member_of_merchant(user_id: object) -> Any:
    """The member of the active merchant with this user id, or None (a bad id is None too)."""
    try:
        user_id = int(str(user_id))
    except ValueError:
        return None
    membership = (
        Membership.objects.filter(tenant=require_tenant(), user_id=user_id)
        .select_related("user")
        .first()
    )
    return membership.user if membership is not None else None


def groups_to_move_to(acting_agent: ActingAgent) -> list[Group]:
    """The groups a ticket may be moved to, by name (none for those who may not move it)."""
    if not acting_agent.can(Capability.REASSIGN):
        return []
    return list(Group.objects.order_by("name"))
