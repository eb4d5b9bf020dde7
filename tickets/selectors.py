"""Reads shared by the pages and the API; objects by id answer 404 for other tenants, and for
tickets the person may not work (a group they are not in): never 403, which would tell them
the ticket exists."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from helpdesk.permissions import ActingAgent, can_work_ticket, tickets_in_reach
from tickets.models import Attachment, Message, Ticket


def access_ticket(*, agent: ActingAgent, number: int) -> Ticket:
    """The active merchant's ticket with this number that ``agent`` may work, or 404."""
    ticket = (
        Ticket.objects.select_related("customer", "order", "assignee", "group")
        .filter(number=number)
        .first()
    )
    if ticket is None or not can_work_ticket(agent, ticket):
        raise Http404("No such ticket")
    return ticket


def access_attachment(*, agent: ActingAgent, pk: int) -> Attachment:
    """An attachment of a ticket ``agent`` may work, or 404."""
    attachment = Attachment.objects.select_related("message__ticket").filter(pk=pk).first()
    if attachment is None or not can_work_ticket(agent, attachment.message.ticket):
        raise Http404("No such attachment")
    return attachment


def ticket_queue(
    *, agent: ActingAgent, status: str = "", query: str = "", mine: bool = False
) -> QuerySet[Ticket]:
    """The tickets in ``agent``'s reach for the list: open ones first by default, newest
    activity first."""
    tickets = tickets_in_reach(
        agent, Ticket.objects.select_related("customer", "assignee", "group")
    )
    if status == "all":
        pass
    elif status:
        tickets = tickets.filter(status=status)
    else:
        tickets = tickets.exclude(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED])
    if mine:
        tickets = tickets.filter(assignee=agent.user)
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


def customer_history(*, agent: ActingAgent, ticket: Ticket, limit: int = 10) -> QuerySet[Ticket]:
    """The customer's other tickets in ``agent``'s reach on every channel, newest first: one
    history per person."""
    return (
        tickets_in_reach(agent, Ticket.objects.filter(customer_id=ticket.customer_id))
        .exclude(pk=ticket.pk)
        .order_by("-updated_at")[:limit]
    )
