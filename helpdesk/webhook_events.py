"""Where the webhook events happen: receivers of the signals the services already send (an
audit row written, a message or an escalation saved, a customer's message filed) and
``ticket_created``, which tickets.services calls for both ways a ticket opens. Each hands the
event to helpdesk.webhook_subscriptions after commit; the objects are read then, only when a
subscriber listens.

Connected in HelpdeskConfig.ready().
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from helpdesk.models import WebhookEvent
from helpdesk.webhook_subscriptions import emit_after_commit

# Audit rows that mean a ticket changed (moved to another group included).
TICKET_CHANGES = {
    "ticket.status_changed",
    "ticket.assigned",
    "ticket.auto_assigned",
    "ticket.returned_to_queue",
    "ticket.priority_changed",
    "ticket.routed",
    "ticket.order_linked",
    "ticket.order_unlinked",
    "ticket.tagged",
    "ticket.untagged",
}
REMEDY_EVENTS = {
    "remedy.granted": WebhookEvent.REMEDY_GRANTED,
    "remedy.executed": WebhookEvent.REMEDY_EXECUTED,
    "remedy.executed_by_hand": WebhookEvent.REMEDY_EXECUTED,
}


def ticket_data(ticket_pk: int) -> dict[str, Any] | None:
    from tickets.api import TicketSerializer
    from tickets.models import Ticket

    ticket = (
        Ticket.objects.select_related("customer", "assignee", "group", "order")
        .filter(pk=ticket_pk)
        .first()
    )
    return None if ticket is None else dict(TicketSerializer(ticket).data)


def ticket_created(ticket: Any) -> None:
    """A ticket opened (its number taken): ``ticket.created`` after commit."""
    pk = ticket.pk
    emit_after_commit(WebhookEvent.TICKET_CREATED, lambda: _wrapped(ticket_data(pk)))


def _wrapped(data: dict[str, Any] | None, **more: Any) -> dict[str, Any] | None:
    return None if data is None else {"data": data, **more}


def _audit_written(sender: Any, event: Any, batch: list[Any], **kwargs: Any) -> None:
    instance = event
    action = instance.action
    if action == "ticket.routed" and any(
        other.action == "ticket.opened" and other.object_id == instance.object_id for other in batch
    ):
        return  # a new ticket's first group: told with ticket.created, not as a change
    if action in TICKET_CHANGES and instance.object_type == "ticket":
        pk = int(instance.object_id)
        changes = {
            field: list(pair)
            for field, pair in (instance.changes or {}).items()
            if isinstance(pair, list) and len(pair) == 2
        }
        emit_after_commit(
            WebhookEvent.TICKET_UPDATED,
            lambda: _wrapped(ticket_data(pk), changes=changes, action=action),
        )
    elif action in REMEDY_EVENTS:
        # Written on the ticket; the remedy is named in the details.
        remedy = (instance.changes or {}).get("details", {}).get("remedy")  # audit.DETAILS_KEY
        if isinstance(remedy, int):
            emit_after_commit(REMEDY_EVENTS[action], lambda: _remedy(remedy))


def _remedy(pk: int) -> dict[str, Any] | None:
    from escalation.api import RemedySerializer
    from escalation.models import Remedy

    remedy = Remedy.objects.select_related("ticket", "order", "granted_by").filter(pk=pk).first()
    if remedy is None:
        return None
    return {"data": {"ticket": remedy.ticket.number, **RemedySerializer(remedy).data}}


def message_data(pk: int) -> dict[str, Any] | None:
    from tickets.api import MessageSerializer
    from tickets.models import Message

    message = (
        Message.objects.select_related("ticket", "author_user", "author_customer")
        .filter(pk=pk)
        .first()
    )
    if message is None:
        return None
    return {"data": {"ticket": message.ticket.number, **MessageSerializer(message).data}}


def _message_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        pk = instance.pk
        emit_after_commit(WebhookEvent.MESSAGE_CREATED, lambda: message_data(pk))


def _customer_wrote(sender: Any, message: Any, **kwargs: Any) -> None:
    # Customers' messages are written in one statement with their ticket (no post_save).
    pk = message.pk
    emit_after_commit(WebhookEvent.MESSAGE_CREATED, lambda: message_data(pk))


def _escalation(pk: int) -> dict[str, Any] | None:
    from escalation.metrics_api import EscalationSerializer
    from escalation.models import Escalation

    escalation = (
        Escalation.objects.select_related(
            "ticket", "ticket__customer", "agent", "group", "raised_by", "resolved_by"
        )
        .filter(pk=pk)
        .first()
    )
    return None if escalation is None else {"data": dict(EscalationSerializer(escalation).data)}


def _escalation_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    pk = instance.pk
    if created:
        emit_after_commit(WebhookEvent.ESCALATION_CREATED, lambda: _escalation(pk))
        return
    fields = kwargs.get("update_fields")
    if instance.state == "resolved" and (fields is None or "state" in fields):
        emit_after_commit(WebhookEvent.ESCALATION_RESOLVED, lambda: _escalation(pk))


def _subscription_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from helpdesk.webhook_subscriptions import note_subscribed_events

    note_subscribed_events(instance.tenant_id)


def connect() -> None:
    from django.db.models.signals import post_delete

    from escalation.models import Escalation
    from helpdesk.models import WebhookSubscription
    from tickets import audit
    from tickets.models import AuditEvent, Message
    from tickets.services import customer_wrote

    for signal in (post_save, post_delete):
        signal.connect(
            _subscription_changed, sender=WebhookSubscription, dispatch_uid=f"webhook-sub-{signal}"
        )

    audit.recorded.connect(_audit_written, sender=AuditEvent, dispatch_uid="webhook-audit")
    post_save.connect(_message_saved, sender=Message, dispatch_uid="webhook-message")
    post_save.connect(_escalation_saved, sender=Escalation, dispatch_uid="webhook-escalation")
    customer_wrote.connect(_customer_wrote, dispatch_uid="webhook-customer-wrote")
