"""Reads shared by the pages and the API; objects by id answer 404 for other tenants."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from tickets.models import Message, Ticket


def access_ticket(*, agent: Any, number: int) -> Ticket:
    """The active tenant's ticket with this number, or 404 (never 403: ids of other merchants
    do not exist as far as an agent can tell)."""
    ticket = (
        Ticket.objects.select_related("customer", "order", "assignee", "group")
        .filter(number=number)
        .first()
    )
    if ticket is None:
        raise Http404("No such ticket")
    return ticket


def ticket_queue(
    *, agent: Any, status: str = "", query: str = "", mine: bool = False
) -> QuerySet[Ticket]:
    """The tickets an agent sees in the list: open ones first by default, newest activity first."""
    tickets = Ticket.objects.select_related("customer", "assignee", "group")
    if status == "all":
        pass
    elif status:
        tickets = tickets.filter(status=status)
    else:
        tickets = tickets.exclude(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED])
    if mine:
        tickets = tickets.filter(assignee=agent)
    if query:
        match = Q(subject__icontains=query) | Q(customer__name__icontains=query)
        match |= Q(customer__identities__value__icontains=query)
        if query.lstrip("#").isdigit():
            match |= Q(number=int(query.lstrip("#")))
        tickets = tickets.filter(match).distinct()
    return tickets.order_by("-updated_at")


def conversation(*, ticket: Ticket) -> QuerySet[Message]:
    return ticket.messages.select_related("author_user", "author_customer").prefetch_related(
        "attachments"
    )


def customer_history(*, ticket: Ticket, limit: int = 10) -> QuerySet[Ticket]:
    """The customer's other tickets on every channel, newest first: one history per person."""
    return (
        Ticket.objects.filter(customer_id=ticket.customer_id)
        .exclude(pk=ticket.pk)
        .order_by("-updated_at")[:limit]
    )
