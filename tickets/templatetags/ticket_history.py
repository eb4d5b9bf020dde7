"""``{% ticket_history ticket as history %}``: the ticket's history in words (tickets.history).

The latest ``history.SHOWN`` entries, or all of them (up to ``history.MOST``) when the page's
address asks for ``?history=all``. People's names come from the request's one read of them.
"""

from __future__ import annotations

from django import template

from tickets import history
from tickets.models import Ticket
from tickets.templatetags.people import _names

register = template.Library()


@register.simple_tag(takes_context=True)
def ticket_history(context: template.Context, ticket: Ticket) -> history.TicketHistory:
    request = context.get("request")
    show_all = request is not None and request.GET.get("history") == "all"
    return history.ticket_history(
        ticket=ticket,
        limit=history.MOST if show_all else history.SHOWN,
        names=_names(context),
        loaded=context.get("conversation"),
        approval_ids=_approval_ids(context),
    )


def _approval_ids(context: template.Context) -> list[int] | None:
    """The ticket's approval requests as the page's remedy panel read them, if it did."""
    panel = context.get("remedy_panel")
    if panel is None:
        return None
    return [request.pk for request in panel.approval_requests]
