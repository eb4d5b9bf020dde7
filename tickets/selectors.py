"""Reads shared by the pages and the API; objects by id answer 404 for other tenants, and for
tickets the person may not work (a group they are not in): never 403, which would tell them
the ticket exists."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Substr
from django.http import Http404

from helpdesk.permissions import (
    ActingAgent,
    Capability,
    can_work_ticket,
    tickets_in_reach,
    works_every_group,
)
from tickets import inbox
from tickets.models import Attachment, Customer, CustomerEvent, Message, Ticket


def access_ticket(*, agent: ActingAgent, number: int) -> Ticket:
    """The active merchant's ticket with this number that ``agent`` may work, or 404."""
    ticket = (
        Ticket.objects.select_related("customer", "order", "assignee", "group")
        # The search words (tens of KB on a long conversation) are the search's, not the page's.
        .defer("search_text")
        .filter(number=number)
        .first()
    )
    if ticket is None or not can_work_ticket(agent, ticket):
        raise Http404("No such ticket")
    ticket.tenant = agent.tenant  # the active merchant's own row: no query when read
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
    """The tickets in ``agent``'s reach for the API's list: unsolved ones by default (``status``
    "all" or one status otherwise), spam left out, found by ``query`` (tickets.search), newest
    activity first. The pages use tickets.inbox directly."""
    view = inbox.VIEWS["mine" if mine else inbox.DEFAULT_VIEW]
    filters = inbox.Filters(status=status, query=query)
    tickets = inbox.view_tickets(agent=agent, view=view, filters=filters)
    return tickets.select_related("customer", "assignee", "group").order_by("-updated_at", "-pk")


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


# --- one customer across channels ------------------------------------------------------------


def access_customer(*, agent: ActingAgent, pk: int) -> Customer:
    """The active merchant's customer ``agent`` may look at, or 404: everyone for those who work
    every group (supervisors and up, agents where the merchant allows it), else customers with
    at least one ticket in the agent's reach."""
    customer = Customer.objects.filter(pk=pk).first()
    if customer is None or not agent.can(Capability.WORK_TICKETS):
        raise Http404("No such customer")
    if works_every_group(agent):
        return customer
    if not tickets_in_reach(agent, Ticket.objects.filter(customer=customer)).exists():
        raise Http404("No such customer")
    return customer


def customer_tickets(*, agent: ActingAgent, customer: Customer, limit: int = 50) -> list[Ticket]:
    """The customer's tickets in ``agent``'s reach on every channel, newest activity first."""
    tickets = tickets_in_reach(agent, Ticket.objects.filter(customer=customer))
    return list(tickets.order_by("-updated_at", "-pk")[:limit])


def tickets_out_of_reach(*, agent: ActingAgent, customer: Customer) -> int:
    """How many of the customer's tickets ``agent`` may not open: counted, never shown."""
    in_reach = tickets_in_reach(agent, Ticket.objects.filter(customer=customer))
    return Ticket.objects.filter(customer=customer).exclude(pk__in=in_reach.values("pk")).count()


EXCERPT_CHARS = 200
TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a customer's timeline: a message on a ticket, or an event on a channel."""

    at: datetime
    kind: str  # "message" or "event"
    channel: str
    channel_label: str
    channel_account_name: str = ""
    # Messages only.
    ticket_number: int | None = None
    ticket_subject: str = ""
    direction: str = ""  # Message.Direction
    direction_label: str = ""
    excerpt: str = ""
    # Events only.
    event_kind: str = ""
    event_label: str = ""
    data: Any = field(default_factory=dict)

    @property
    def is_internal(self) -> bool:
        return self.direction == Message.Direction.NOTE

    @property
    def details(self) -> list[tuple[str, str]]:
        """An event's data as (name, value) pairs to show."""
        if isinstance(self.data, dict):
            return [(str(key), _shown(value)) for key, value in self.data.items()]
        return [("", _shown(self.data))] if self.data not in (None, "", [], {}) else []


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def customer_timeline(
    *, agent: ActingAgent, customer: Customer, limit: int = TIMELINE_LIMIT
) -> list[TimelineEntry]:
    """What the customer wrote and was told on every channel and ticket in ``agent``'s reach
    (with the internal notes there, marked so), and what they did on channels, newest first.

    Two queries whatever the number of entries; messages of tickets out of reach never leave
    the database. A message counts from when it reached the helpdesk, like the ticket's
    conversation; an event from when the channel says it happened.
    """
    in_reach = tickets_in_reach(agent, Ticket.objects.filter(customer=customer))
    messages = (
        Message.objects.filter(ticket__in=in_reach.values("pk"))
        .select_related("ticket", "channel_account")
        .annotate(text_start=Substr("body_text", 1, EXCERPT_CHARS * 2))
        .only(
            "created_at",
            "direction",
            "channel",
            "subject",
            "ticket__number",
            "ticket__subject",
            "channel_account__name",
        )
        .order_by("-created_at", "-pk")[:limit]
    )
    events = CustomerEvent.objects.filter(customer=customer).select_related("channel_account")
    entries = [
        TimelineEntry(
            at=message.created_at,
            kind="message",
            channel=message.channel,
            channel_label=message.get_channel_display(),
            channel_account_name=message.channel_account.name if message.channel_account else "",
            ticket_number=message.ticket.number,
            ticket_subject=message.ticket.subject,
            direction=message.direction,
            direction_label=message.get_direction_display(),
            excerpt=excerpt(message.text_start or message.subject),
        )
        for message in messages
    ]
    entries += [
        TimelineEntry(
            at=event.occurred_at,
            kind="event",
            channel=event.channel,
            channel_label=event.get_channel_display(),
            channel_account_name=event.channel_account.name if event.channel_account else "",
            event_kind=event.kind,
            event_label=event.get_kind_display(),
            data=event.data,
        )
        for event in events.order_by("-occurred_at", "-pk")[:limit]
    ]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]
