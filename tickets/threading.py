"""Linking a customer's message to what it belongs to: the ticket it continues, the order it
names, and the id that recognises its redelivery. Channel-neutral: the channels hand over
``tickets.incoming.InboundMessage``s."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from tickets.incoming import InboundMessage
from tickets.models import Customer, Message, Order, Ticket

_ORDER_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{3,40}")
_TICKET_TOKEN = re.compile(r"\[#(\d{1,9})\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise_external_id(value: str) -> str:
    """A provider's id as we store it: trimmed, and hashed when too long or holding control
    characters (PostgreSQL refuses NUL; a hash still recognises the redelivery)."""
    value = (value or "").strip().strip("<>").strip()
    if len(value) > 200 or _CONTROL.search(value):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def find_thread(
    *,
    customer: Customer,
    inbound: InboundMessage,
    account_id: int | None = None,
    new_customer: bool = False,
) -> Ticket | None:
    """The ticket a message continues, or None for a new conversation.

    In order: the message it replies to (reply headers), the channel's conversation id, a
    ``[#123]`` token of this customer's ticket in the subject, then this customer's open ticket
    on the same channel within the threading window of the message's date. A link to a merged
    ticket leads to the ticket it was merged into. A closed ticket is never continued. A reply
    joins a ticket only when its sender is the ticket's customer or was sent or copied the
    message it answers: knowing a Message-ID is not enough to read someone's ticket.

    ``new_customer``: the customer was created for this message, so has no ticket of their own
    yet; only the reply headers can link it (to a conversation the sender was copied on).
    """
    reply_ids = [normalise_external_id(i) for i in inbound.reply_to_ids if i][:50]
    # Lazily, in order: once a candidate is found, the later lookups are not queried at all.
    linked = _linked_tickets(
        customer=customer,
        inbound=inbound,
        reply_ids=reply_ids,
        account_id=account_id,
        new_customer=new_customer,
    )
    for ticket in linked:
        ticket = _surviving(ticket)
        if ticket is not None and ticket.status != Ticket.Status.CLOSED:
            return ticket
    if reply_ids or new_customer:
        # A reply to something we do not know starts its own ticket rather than joining another.
        return None
    # The window compares the message's own date with the customer's previous message on the
    # ticket, so an archived 2018 mail never joins a 2012 ticket that happens to be open, and
    # today's mail never joins a ticket imported from 2018. A date in the future is a wrong
    # clock: now.
    now = timezone.now()
    anchor = min(inbound.sent_at or now, now)
    window = timedelta(hours=settings.HELPDESK_THREAD_WINDOW_HOURS)
    near = (anchor - window, anchor + window)
    return (
        Ticket.objects.filter(customer=customer, channel=inbound.channel)
        .select_related("group")
        .filter(
            Q(last_customer_message_at__range=near)
            | Q(last_customer_message_at__isnull=True, created_at__range=near)
        )
        .exclude(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED])
        .order_by("-updated_at")
        .first()
    )


def _surviving(ticket: Ticket | None, hops: int = 5) -> Ticket | None:
    """The ticket a merged one went into (tickets.merging), following a few merges in a row;
    any other ticket as it is."""
    while ticket is not None and ticket.merged_into_id is not None and hops > 0:
        ticket = Ticket.objects.select_related("group").filter(pk=ticket.merged_into_id).first()
        hops -= 1
    return ticket


def _linked_tickets(
    *,
    customer: Customer,
    inbound: InboundMessage,
    reply_ids: list[str],
    account_id: int | None,
    new_customer: bool = False,
) -> Iterator[Ticket | None]:
    """The tickets a message names, strongest link first: the message it replies to, the
    channel's conversation id, a ``[#123]`` token of this customer's ticket in the subject."""
    if reply_ids:
        earlier = (
            Message.objects.filter(channel=inbound.channel, external_id__in=reply_ids)
            .select_related("ticket__group")
            .order_by("-created_at")
            .first()
        )
        if earlier is not None and was_party_to(
            customer=customer, inbound=inbound, message=earlier
        ):
            yield earlier.ticket
    if new_customer:
        return  # the lookups below are of the customer's own tickets
    if inbound.conversation_id:
        earlier = (
            Message.objects.filter(
                channel_account_id=account_id,
                conversation_id=inbound.conversation_id[:255],
                ticket__customer=customer,
            )
            .select_related("ticket__group")
            .order_by("-created_at")
            .first()
        )
        yield earlier.ticket if earlier else None
    token = _TICKET_TOKEN.search(inbound.subject or "")
    if token:
        yield (
            Ticket.objects.filter(number=int(token.group(1)), customer=customer)
            .select_related("group")
            .first()
        )


def was_party_to(*, customer: Customer, inbound: InboundMessage, message: Message) -> bool:
    """Whether the sender of ``inbound`` took part in ``message``'s conversation."""
    if message.ticket.customer_id == customer.pk:
        return True
    sender = (inbound.sender_value or "").lower()
    recipients = {
        str(address).lower()
        for address in [*message.metadata.get("recipients", []), message.metadata.get("to", "")]
        if address
    }
    return bool(sender) and sender in recipients


def find_order_reference(*, customer: Customer, inbound: InboundMessage) -> Order | None:
    """The customer's own order the channel names (``order_number``), else one named in the
    subject or text (e.g. "订单号 SO20261105")."""
    for orders in orders_named(inbound):
        found = orders.filter(customer=customer).first()
        if found is not None:
            return found
    return None


def orders_named(inbound: InboundMessage) -> list[QuerySet[Order]]:
    """Where to look for the order a message names, strongest first: the number the channel
    states, then order-like tokens of the subject and text (at least 4 digits), the latest
    order first. Filter each by the customer. Empty when the message names nothing: no lookup.
    """
    lookups = []
    if inbound.order_number:
        lookups.append(Order.objects.filter(number=inbound.order_number[:64]))
    tokens = {
        token
        for token in _ORDER_TOKEN.findall(f"{inbound.subject}\n{inbound.text[:5000]}")
        if sum(ch.isdigit() for ch in token) >= 4
    }
    if tokens:
        tokens |= {token.upper() for token in tokens}
        lookups.append(Order.objects.filter(number__in=sorted(tokens)[:200]).order_by("-placed_at"))
    return lookups
