"""Colleagues on the same ticket: who has it open and who is typing in it.

Agents' pages say so over their socket (tickets/consumers.py); each ticket has a channel-layer
group, joined only by sockets whose person may work the ticket, and a newcomer's "viewing" asks
those already there to answer, so both see each other. Nothing is stored in the database: a
page that goes away says "left", or its socket's disconnect says it for it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from helpdesk import permissions, tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.models import Tenant
from tickets import people
from tickets.models import Ticket

# The event agents' pages hear (static/js/ticket-presence.js).
PRESENCE_EVENT = "ticket.presence"
# What a page may say about a ticket it shows.
STATES = frozenset({"viewing", "typing", "left"})
# Which box someone types in; a reply unless the page says a note.
BOXES = frozenset({"reply", "note"})
_LARGEST_NUMBER = 2**31 - 1


def ticket_group(tenant_id: int, number: int) -> str:
    return f"tenant-{tenant_id}-ticket-{number}"


def ticket_number_of(content: dict[str, Any]) -> int | None:
    """The ticket number a page's message is about, or None when it is not a plausible one."""
    number = content.get("ticket")
    if isinstance(number, bool) or not isinstance(number, int):
        return None
    return number if 0 < number <= _LARGEST_NUMBER else None


def box_of(content: dict[str, Any]) -> str:
    box = content.get("box")
    return box if box in BOXES else "reply"


def viewer_name(*, user: Any, tenant: Tenant, number: int) -> str | None:
    """How ``user`` is named to colleagues on ticket ``number`` of ``tenant``, or None when they
    may not work that ticket (the same rule as the ticket page: can_work_ticket) or it does
    not exist."""
    with tenancy.activate(tenant), transaction.atomic():
        try:
            acting = permissions.acting_agent_for(user, tenant)
        except PermissionDenied:
            return None
        ticket = Ticket.objects.filter(number=number).first()
        if ticket is None or not permissions.can_work_ticket(acting, ticket):
            return None
        return people.name_of(user, people.display_names([user.pk]))
