"""Which order a ticket is about: agents link one from the customer card (or by its number) and
unlink it again. Each change is audited and tells agents' pages after commit."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import Actor, require_ticket_in_reach
from tickets import audit, search
from tickets.audit import AuditKind
from tickets.models import Order, Ticket


def order_by_number(number: str) -> Order:
    """The active merchant's order with this number (any of its customers'), or a 400."""
    number = (number or "").strip().lstrip("#")
    if not number:
        raise BadInput(_("Enter an order number"), field="order")
    order = Order.objects.select_related("customer").filter(number=number[:64]).first()
    if order is None:
        raise BadInput(
            _("This merchant has no order %(number)s") % {"number": number[:64]}, field="order"
        )
    return order


def link_order_to_ticket(*, acting_agent: Actor, ticket: Ticket, order: Order) -> Ticket:
    """Link the order a ticket in reach is about, replacing the one linked before. An order of
    another of the merchant's customers may be linked (a gift, a partner's order): the card
    says whose it is."""
    require_ticket_in_reach(acting_agent, ticket)
    if order.tenant_id != ticket.tenant_id:
        raise BadInput(_("This merchant has no such order"), field="order")
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.order_id == order.pk:
            return ticket
        old_number = (
            Order.objects.filter(pk=ticket.order_id).values_list("number", flat=True).first()
        )
        ticket.order = order
        ticket.save(update_fields=["order", "updated_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_ORDER_LINKED,
            obj=ticket,
            changes={"order": (old_number, order.number)},
            details={"order_number": order.number},
        )
        search.refresh_ticket(ticket)  # found by its order and tracking numbers
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "order": order.number},
            ticket=ticket,
        )
    return ticket


def unlink_order(*, acting_agent: Actor, ticket: Ticket) -> Ticket:
    """The ticket is about no order any more (a no-op when none is linked)."""
    require_ticket_in_reach(acting_agent, ticket)
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.order_id is None:
            return ticket
        old_number = (
            Order.objects.filter(pk=ticket.order_id).values_list("number", flat=True).first()
        )
        ticket.order = None
        ticket.save(update_fields=["order", "updated_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_ORDER_UNLINKED,
            obj=ticket,
            changes={"order": (old_number, None)},
            details={"order_number": old_number},
        )
        search.refresh_ticket(ticket)  # found by its order and tracking numbers
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "order": None},
            ticket=ticket,
        )
    return ticket
