"""Celery tasks of escalation triggers. Each takes the tenant id first.

Celery's autodiscovery finds only ``tasks.py``: ``EscalationConfig.ready`` imports this module.
"""

from __future__ import annotations

from celery import shared_task

from helpdesk import tenancy


@shared_task(base=tenancy.TenantTask, acks_late=True)
def inbound_triggers(
    tenant_id: int, ticket_id: int, message_id: int, *, new_ticket: bool = False
) -> list[int]:
    """Escalate a ticket on a customer's message when the merchant's triggers say so (the
    customer asks for a supervisor, or keeps coming back about one order); the ids of the
    escalations raised or found open. ``new_ticket``: the message opened the ticket."""
    from escalation import escalations
    from tickets.models import Message

    message = (
        Message.objects.select_related("ticket", "ticket__order")
        .filter(pk=message_id, ticket_id=ticket_id)
        .first()
    )
    if message is None:
        return []  # moved or deleted since: nothing left to judge
    return [
        escalation.pk
        for escalation in escalations.check_customer_message(
            ticket=message.ticket, message=message, opened_ticket=new_ticket
        )
    ]
