"""Where a new ticket goes. The routing issue grows this (skills, capacity, presence)."""

from __future__ import annotations

from tickets.models import Group, Ticket


def group_for_new_ticket() -> Group | None:
    """The group a new ticket starts in: the merchant's default group, where agents pick it up.

    Ask before the ticket is written and pass the answer to ``draft_ticket``: the row is then
    written once, rather than inserted and updated.
    """
    return Group.objects.filter(is_default=True).order_by("pk").first()


def route_new_ticket(*, ticket: Ticket) -> Ticket:
    """Put a new, unrouted ticket in the merchant's default group, where agents pick it up."""
    if ticket.group_id is not None:
        return ticket
    default = group_for_new_ticket()
    if default is not None:
        Ticket.objects.filter(pk=ticket.pk).update(group=default)
        ticket.group = default
    return ticket
