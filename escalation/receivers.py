"""What sets escalation triggers off elsewhere in the helpdesk: a missed service-level target
and a customer's message. Connected in ``EscalationConfig.ready``."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from escalation import escalations
from escalation.models import Trigger
from helpdesk.tenancy import require_tenant
from tickets import service_levels
from tickets.models import Message, Ticket

logger = logging.getLogger(__name__)

BREACH_TRIGGERS = {
    service_levels.FIRST_RESPONSE: Trigger.FIRST_RESPONSE_BREACH,
    service_levels.RESOLUTION: Trigger.RESOLUTION_BREACH,
}


def escalate_missed_target(sender: Any, *, ticket: Ticket, target: str, **kwargs: Any) -> None:
    """A missed first-response or resolution target escalates the ticket when the merchant
    switched that trigger on; a ticket already solved or closed is left to the service-level
    reports: there is nothing left for a supervisor to step into."""
    trigger = BREACH_TRIGGERS.get(target)
    if trigger is None or not ticket.is_open:
        return
    try:
        # A savepoint inside the sweep's transaction: a failed escalation must not undo the
        # marking of the missed targets (the sweep would find them again, forever).
        with transaction.atomic():
            escalations.escalate(ticket=ticket, trigger=trigger)
    except Exception:
        logger.exception("escalating ticket %s for a missed %s failed", ticket.pk, target)


def check_customer_message(
    sender: Any, *, ticket: Ticket, message: Message, new_ticket: bool, **kwargs: Any
) -> None:
    """A customer's message is judged by the inbound triggers in a task, after the filing
    commits: filing stays fast, and the task sees the message. It is told whether the message
    opened its ticket, which answers two of its questions without a query."""
    from escalation import trigger_tasks

    trigger_tasks.inbound_triggers.delay_on_commit(
        require_tenant().pk, ticket.pk, message.pk, new_ticket=new_ticket
    )


def connect() -> None:
    from tickets.services import customer_wrote

    service_levels.service_level_breached.connect(
        escalate_missed_target, sender=Ticket, dispatch_uid="escalation.missed_target"
    )
    customer_wrote.connect(
        check_customer_message, sender=Ticket, dispatch_uid="escalation.customer_message"
    )
