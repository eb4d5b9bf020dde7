"""Actions that change tickets, customers and orders. Views, tasks and tests all call these."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.models import Tenant
from helpdesk.tenancy import require_tenant
from tickets.models import (
    AuditEvent,
    Customer,
    CustomerIdentity,
    IdentityKind,
    Message,
    Order,
    Tag,
    Ticket,
    TicketTag,
)

Status = Ticket.Status

# Which status may follow which. solved/closed -> open is a reopen.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Status.NEW: {Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.OPEN: {Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.PENDING: {Status.OPEN, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.ON_HOLD: {Status.OPEN, Status.PENDING, Status.SOLVED, Status.CLOSED},
    Status.SOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: {Status.OPEN},
}


def actor_label(actor: Any) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "get_username", lambda: str(actor))()


def record_audit(
    *, actor: Any, action: str, obj: Any, changes: dict[str, Any] | None = None
) -> AuditEvent:
    """Append who did what to the tenant's audit log (call inside the action's transaction)."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label(actor),
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(obj.pk),
        changes=changes or {},
    )


def normalise_identity(*, kind: str, value: str, region: str = "CN") -> str:
    """The canonical form of an identity: lower-case email, E.164 phone, others trimmed."""
    value = (value or "").strip()
    if kind == IdentityKind.EMAIL:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise BadInput(f"{value!r} is not an email address", field="email")
        return value.lower()
    if kind == IdentityKind.PHONE:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException as exc:
            raise BadInput(f"{value!r} is not a phone number", field="phone") from exc
        if not phonenumbers.is_possible_number(number):
            raise BadInput(f"{value!r} is not a phone number", field="phone")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not value:
        raise BadInput(f"An empty {kind} identity cannot name a customer", field=kind)
    return value


def resolve_customer(*, kind: str, value: str, name: str = "") -> Customer:
    """The customer behind an identity; a new customer when no identity matches."""
    tenant = require_tenant()
    value = normalise_identity(kind=kind, value=value, region=tenant.phone_region)
    identity = (
        CustomerIdentity.objects.select_related("customer").filter(kind=kind, value=value).first()
    )
    if identity is not None:
        customer = identity.customer
        if name and not customer.name:
            customer.name = name
            customer.save(update_fields=["name"])
        return customer
    with transaction.atomic():
        customer = Customer.objects.create(name=name or value.split("@")[0])
        try:
            with transaction.atomic():
                CustomerIdentity.objects.create(customer=customer, kind=kind, value=value)
        except IntegrityError:
            # Another worker created the same identity a moment ago: use theirs.
            customer.delete()
            identity = (
                CustomerIdentity.objects.select_related("customer")
                .filter(kind=kind, value=value)
                .first()
            )
            if identity is None:
                raise
            return identity.customer
    return customer


def add_identity(*, actor: Any, customer: Customer, kind: str, value: str) -> CustomerIdentity:
    """Teach the helpdesk another way to reach a customer (one identity belongs to one person)."""
    tenant = require_tenant()
    value = normalise_identity(kind=kind, value=value, region=tenant.phone_region)
    with transaction.atomic():
        existing = CustomerIdentity.objects.filter(kind=kind, value=value).first()
        if existing is not None:
            if existing.customer_id != customer.pk:
                raise BadInput(
                    _("%(value)s already belongs to another customer") % {"value": value},
                    field=kind,
                )
            return existing
        identity = CustomerIdentity.objects.create(customer=customer, kind=kind, value=value)
        record_audit(actor=actor, action="identity.added", obj=customer, changes={kind: value})
    return identity


def next_ticket_number(tenant: Tenant) -> int:
    """Take the tenant's next ticket number under a row lock (call inside the creating
    transaction, so a rollback gives the number back and numbers stay gapless)."""
    locked = Tenant.objects.select_for_update().only("last_ticket_number").get(pk=tenant.pk)
    locked.last_ticket_number += 1
    Tenant.objects.filter(pk=tenant.pk).update(last_ticket_number=locked.last_ticket_number)
    return locked.last_ticket_number


def open_ticket(
    *,
    actor: Any,
    customer: Customer,
    subject: str,
    channel: str,
    order: Order | None = None,
    priority: str = Ticket.Priority.NORMAL,
    reason_code: str = "",
) -> Ticket:
    """Open a ticket for a customer with the tenant's next number."""
    tenant = require_tenant()
    with transaction.atomic():
        ticket = Ticket.objects.create(
            number=next_ticket_number(tenant),
            subject=(subject or "").strip()[:255] or "(no subject)",
            channel=channel,
            customer=customer,
            order=order,
            priority=priority,
            reason_code=reason_code,
        )
        record_audit(
            actor=actor,
            action="ticket.opened",
            obj=ticket,
            changes={"number": ticket.number, "channel": channel},
        )
        realtime.publish_after_commit(
            tenant.pk, "ticket.created", {"ticket": ticket.number, "subject": ticket.subject}
        )
    return ticket


def change_ticket_status(*, actor: Any, ticket: Ticket, status: str) -> Ticket:
    """Move a ticket along its lifecycle; solved or closed tickets may be reopened."""
    if status not in Status.values:
        raise BadInput(f"Unknown status {status!r}", field="status")
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        old = ticket.status
        if old == status:
            return ticket
        if status not in ALLOWED_TRANSITIONS[old]:
            raise InvalidTransition(
                _("A %(old)s ticket cannot become %(new)s")
                % {"old": Status(old).label.lower(), "new": Status(status).label.lower()},
                old=old,
                new=status,
            )
        now = timezone.now()
        ticket.status = status
        fields = ["status", "updated_at"]
        if status == Status.SOLVED:
            ticket.solved_at = now
            fields.append("solved_at")
        if status == Status.CLOSED:
            ticket.closed_at = now
            fields.append("closed_at")
        if old in {Status.SOLVED, Status.CLOSED} and status == Status.OPEN:
            ticket.reopened_count += 1
            ticket.solved_at = ticket.closed_at = None
            fields += ["reopened_count", "solved_at", "closed_at"]
        ticket.save(update_fields=fields)
        record_audit(
            actor=actor,
            action="ticket.status_changed",
            obj=ticket,
            changes={"status": [old, status]},
        )
        realtime.publish_after_commit(
            ticket.tenant_id, "ticket.updated", {"ticket": ticket.number, "status": status}
        )
    return ticket


def assign_ticket(*, actor: Any, ticket: Ticket, assignee: Any) -> Ticket:
    """Give a ticket to an agent of the same tenant (or to nobody)."""
    if assignee is not None and not assignee.memberships.filter(tenant=ticket.tenant_id).exists():
        raise BadInput(_("That person is not an agent of this merchant"), field="assignee")
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        old = ticket.assignee_id
        new = assignee.pk if assignee is not None else None
        if old == new:
            return ticket
        ticket.assignee = assignee
        ticket.save(update_fields=["assignee", "updated_at"])
        record_audit(
            actor=actor, action="ticket.assigned", obj=ticket, changes={"assignee": [old, new]}
        )
        realtime.publish_after_commit(
            ticket.tenant_id, "ticket.updated", {"ticket": ticket.number, "assignee": new}
        )
    return ticket


def tag_ticket(*, actor: Any, ticket: Ticket, names: list[str]) -> list[str]:
    """Add tags to a ticket; returns the tags that were new on it."""
    added = []
    with transaction.atomic():
        for name in {n.strip().lower() for n in names if n.strip()}:
            tag, _ = Tag.objects.get_or_create(name=name[:60])
            _, created = TicketTag.objects.get_or_create(ticket=ticket, tag=tag)
            if created:
                added.append(tag.name)
        if added:
            record_audit(actor=actor, action="ticket.tagged", obj=ticket, changes={"added": added})
    return sorted(added)


def link_order(*, actor: Any, ticket: Ticket, order: Order) -> Ticket:
    """Link the order a ticket is about (the first link wins; agents may change it)."""
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.order_id == order.pk:
            return ticket
        old = ticket.order_id
        ticket.order = order
        ticket.save(update_fields=["order", "updated_at"])
        record_audit(
            actor=actor,
            action="ticket.order_linked",
            obj=ticket,
            changes={"order": [old, order.pk]},
        )
    return ticket


def add_note(*, actor: Any, ticket: Ticket, text: str) -> Message:
    """An internal note: visible to agents only, never sent to the customer."""
    text = (text or "").strip()
    if not text:
        raise BadInput(_("A note needs some text"), field="text")
    with transaction.atomic():
        message = Message.objects.create(
            ticket=ticket,
            direction=Message.Direction.NOTE,
            channel=ticket.channel,
            author_user=actor,
            body_text=text,
            full_text=text,
            delivery_state=Message.Delivery.NOT_SENT,
        )
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
        record_audit(actor=actor, action="message.note_added", obj=message)
        realtime.publish_after_commit(
            ticket.tenant_id, "ticket.message", {"ticket": ticket.number, "direction": "note"}
        )
    return message
