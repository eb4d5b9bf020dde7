"""The service-level clock on tickets: ``{% load service_levels %}{% service_clock ticket %}``."""

from __future__ import annotations

from typing import Any

from django import template

from tickets.business_hours import Calendar, calendar_for
from tickets.models import Ticket
from tickets.service_levels import clock_of

register = template.Library()


def _calendar(context: template.Context, ticket: Ticket) -> Calendar:
    """The ticket's group's calendar, read once per group and page (a list shows many)."""
    calendars = context.render_context.setdefault("service_level_calendars", {})
    if ticket.group_id not in calendars:
        calendars[ticket.group_id] = calendar_for(ticket.group)
    return calendars[ticket.group_id]


@register.inclusion_tag("tickets/service_clock.html", takes_context=True)
def service_clock(context: template.Context, ticket: Ticket) -> dict[str, Any]:
    """A small badge with the time left to the ticket's next service-level target: red when
    overdue, amber when due soon, grey while its group is closed; nothing when no clock runs."""
    has_clock = ticket.is_open and (
        ticket.first_response_due_at is not None or ticket.resolution_due_at is not None
    )
    clock = clock_of(ticket, calendar=_calendar(context, ticket)) if has_clock else None
    return {"clock": clock}
