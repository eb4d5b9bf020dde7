"""Actions on remedies: an agent makes a customer whole on the spot, within the merchant's
limits, and the merchant's order system carries it out."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from escalation import limits
from escalation.models import NEEDS_ORDER, PAYS_OUT, Remedy, RemedyKind
from helpdesk import realtime
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Membership
from helpdesk.money import checked_amount, checked_currency, rounded
from helpdesk.permissions import ActingAgent, Actor, require_ticket_in_reach
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Customer, Order, Ticket


def require_remedy_giver(acting_agent: Actor, ticket: Ticket) -> None:
    """Refuse unless a member of the merchant (not the system, not support access) works the
    ticket: remedies, and asks for them, are a person's decision."""
    require_ticket_in_reach(acting_agent, ticket)
    if not isinstance(acting_agent, ActingAgent) or acting_agent.membership is None:
        raise PermissionDenied(_("Only the merchant's own people grant remedies"))


def grant_remedy(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    kind: str,
    amount: Decimal | str | None = None,
    order: Order | None = None,
    currency: str = "",
    item: str = "",
    note: str = "",
) -> Remedy:
    """Give the ticket's customer a remedy at once when it is within every limit the merchant
    set for the person; refuse it with LimitExceeded (writing nothing) when it is not.

    ``order`` defaults to the ticket's order; money paid out (refund, price protection, free
    order) never passes what was paid on it minus what was refunded. A free order gives back
    all of that, whatever ``amount`` says. Concurrent grants are serialised on the customer,
    the order and the person, so no limit can be passed by acting at the same moment.
    """
    require_remedy_giver(acting_agent, ticket)
    if kind not in RemedyKind.values:
        raise BadInput(_("Unknown remedy %(kind)s") % {"kind": kind}, field="kind")
    order = order or ticket.order
    if order is not None and order.customer_id != ticket.customer_id:
        raise BadInput(_("That order is not this customer's"), field="order")
    if kind in NEEDS_ORDER and order is None:
        raise BadInput(_("This remedy needs the order it is for"), field="order")
    currency = checked_currency(
        order.currency if order else currency or require_tenant().default_currency
    )
    with transaction.atomic():
        # Locks in one order everywhere (customer, order, person): no deadlock between grants.
        customer = Customer.objects.select_for_update().get(pk=ticket.customer_id)
        if order is not None:
            order = Order.objects.select_for_update().get(pk=order.pk)
        Membership.objects.select_for_update().filter(pk=acting_agent.membership.pk).first()
        if kind == RemedyKind.FREE_ORDER:
            amount = order.paid_amount - order.refunded_amount
            if amount <= 0:
                raise BadInput(_("Nothing paid on this order is left to give back"), field="order")
            if rounded(amount, currency) == amount:
                amount = rounded(amount, currency)  # "200.00", not the column's "200.0000"
        else:
            amount = checked_amount(amount if amount is not None else "", currency)
            if amount == 0:
                raise BadInput(_("A remedy needs an amount above zero"), field="amount")
        limits.check_grant(
            acting_agent,
            kind=kind,
            amount=amount,
            currency=currency,
            customer=customer,
            order=order,
        )
        remedy = Remedy.objects.create(
            ticket=ticket,
            customer=customer,
            order=order,
            kind=kind,
            amount=amount,
            currency=currency,
            item=item.strip()[:200],
            note=note.strip(),
            granted_by=acting_agent.user,
            granted_role=acting_agent.role,
            execution=Remedy.Execution.PENDING,
        )
        if kind in PAYS_OUT:
            Order.objects.filter(pk=order.pk).update(refunded_amount=F("refunded_amount") + amount)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.REMEDY_GRANTED,
            obj=ticket,
            details={
                "remedy": remedy.pk,
                "kind": kind,
                "amount": amount,
                "currency": currency,
                "order": order.number if order else None,
            },
        )
        from escalation import execution

        execution.hand_over(remedy)
        # The ticket's remedies panel and the supervisor's spend refresh on other pages.
        realtime.publish_after_commit(
            ticket.tenant_id,
            "remedy.granted",
            {"ticket": ticket.number, "remedy": remedy.pk, "kind": kind},
            ticket=ticket,
        )
    return remedy
