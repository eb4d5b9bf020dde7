"""Actions that change tickets, customers and orders. Views, tasks and tests all call these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import phonenumbers
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.models import Tenant
from helpdesk.permissions import (
    ActingAgent,
    Actor,
    Capability,
    SystemActor,
    require,
    require_ticket_in_reach,
)
from helpdesk.tenancy import require_tenant
from tickets.models import (
    AuditEvent,
    Customer,
    CustomerIdentity,
    Group,
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


def _person(actor: Any) -> Any:
    """The user behind an actor: a person, an ActingAgent, or the system (None)."""
    if isinstance(actor, ActingAgent | SystemActor):
        return actor.user
    return actor


def actor_label(actor: Any) -> str:
    person = _person(actor)
    if person is None:
        return "system"
    return getattr(person, "get_username", lambda: str(person))()


def record_audit(
    *, actor: Any, action: str, obj: Any, changes: dict[str, Any] | None = None
) -> AuditEvent:
    """Append who did what to the tenant's audit log (call inside the action's transaction).

    ``actor`` is the acting agent, the person, or ``SYSTEM``/None for the helpdesk itself.
    """
    person = _person(actor)
    user = person if getattr(person, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label(person),
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


def resolve_customer(*, kind: str, value: str, name: str = "", lock: bool = False) -> Customer:
    """The customer behind an identity; a new customer when no identity matches.

    With ``lock`` (inside a transaction) a known customer's row stays locked until the
    transaction ends, taken by the same query that finds the identity. A customer created here
    needs no lock: no other transaction can see the row before this one commits.
    """
    tenant = require_tenant()
    value = normalise_identity(kind=kind, value=value, region=tenant.phone_region)
    identities = CustomerIdentity.objects.select_related("customer").filter(kind=kind, value=value)
    if lock:
        identities = identities.select_for_update(of=("customer",))
    identity = identities.first()
    if identity is not None:
        customer = identity.customer
        if name and not customer.name:
            customer.name = name
            customer.save(update_fields=["name"])
        return customer
    # No savepoint of its own: a failure here fails the caller's whole transaction anyway. The
    # identity's savepoint is the one that lets a lost race recover.
    with transaction.atomic(savepoint=False):
        customer = Customer.objects.create(name=name or value.split("@")[0])
        try:
            with transaction.atomic():
                CustomerIdentity.objects.create(customer=customer, kind=kind, value=value)
        except IntegrityError:
            # Another worker created the same identity a moment ago: use theirs.
            customer.delete()
            identity = identities.first()
            if identity is None:
                raise
            return identity.customer
    return customer


def add_identity(
    *, acting_agent: Actor, customer: Customer, kind: str, value: str
) -> CustomerIdentity:
    """Teach the helpdesk another way to reach a customer (one identity belongs to one person)."""
    require(acting_agent, Capability.WORK_TICKETS)
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
        record_audit(
            actor=acting_agent, action="identity.added", obj=customer, changes={kind: value}
        )
    return identity


def draft_ticket(
    *,
    customer: Customer,
    subject: str,
    channel: str,
    order: Order | None = None,
    priority: str = Ticket.Priority.NORMAL,
    reason_code: str = "",
    group: Group | None = None,
    last_customer_message_at: datetime | None = None,
) -> Ticket:
    """A new ticket without its number yet. The caller must call ``number_ticket`` as the last
    write of the same transaction: the merchant's counter stays locked from then until commit.

    ``group`` and ``last_customer_message_at`` are written with the row, sparing an UPDATE each.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("draft_ticket() must run inside the transaction that numbers it")
    return Ticket.objects.create(
        number=None,
        subject=(subject or "").strip()[:255] or "(no subject)",
        channel=channel,
        customer=customer,
        order=order,
        priority=priority,
        reason_code=reason_code,
        group=group,
        last_customer_message_at=last_customer_message_at,
    )


def number_ticket(*, acting_agent: Actor, ticket: Ticket) -> Ticket:
    """Give a drafted ticket the merchant's next number: gapless and unique, because the counter
    row stays locked until the transaction ends and a rollback gives the number back."""
    require(acting_agent, Capability.WORK_TICKETS)
    tenant = require_tenant()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement takes the number and writes it on the ticket: one round trip fewer
            # while the counter row is locked. A CTE that modifies data always runs to the end,
            # so a ticket it cannot find still raises below and rolls the number back.
            cursor.execute(
                f"WITH counter AS (UPDATE {Tenant._meta.db_table} "
                "SET last_ticket_number = last_ticket_number + 1 WHERE id = %s "
                "RETURNING last_ticket_number) "
                f"UPDATE {Ticket._meta.db_table} AS ticket "
                "SET number = counter.last_ticket_number FROM counter "
                "WHERE ticket.id = %s AND ticket.tenant_id = %s RETURNING ticket.number",
                [tenant.pk, ticket.pk, tenant.pk],
            )
            row = cursor.fetchone()
            if row is None:
                raise Ticket.DoesNotExist(f"No draft ticket {ticket.pk} of this merchant")
            ticket.number = row[0]
        else:  # SQLite (local use) has no data-modifying CTE
            cursor.execute(
                f"UPDATE {Tenant._meta.db_table} SET last_ticket_number = last_ticket_number + 1 "
                "WHERE id = %s RETURNING last_ticket_number",
                [tenant.pk],
            )
            ticket.number = cursor.fetchone()[0]
            Ticket.objects.filter(pk=ticket.pk).update(number=ticket.number)
    record_audit(
        actor=acting_agent,
        action="ticket.opened",
        obj=ticket,
        changes={"number": ticket.number, "channel": ticket.channel},
    )
    realtime.publish_after_commit(
        tenant.pk,
        "ticket.created",
        {"ticket": ticket.number, "subject": ticket.subject},
        ticket=ticket,
    )
    return ticket


def open_ticket(
    *,
    acting_agent: Actor,
    customer: Customer,
    subject: str,
    channel: str,
    order: Order | None = None,
    priority: str = Ticket.Priority.NORMAL,
    reason_code: str = "",
) -> Ticket:
    """Open a ticket for a customer with the tenant's next number (agents and up, or the
    helpdesk itself)."""
    require(acting_agent, Capability.WORK_TICKETS)
    with transaction.atomic():
        ticket = draft_ticket(
            customer=customer,
            subject=subject,
            channel=channel,
            order=order,
            priority=priority,
            reason_code=reason_code,
        )
        return number_ticket(acting_agent=acting_agent, ticket=ticket)


def change_ticket_status(*, acting_agent: Actor, ticket: Ticket, status: str) -> Ticket:
    """Move a ticket in reach along its lifecycle; solved or closed tickets may be reopened."""
    require_ticket_in_reach(acting_agent, ticket)
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
            actor=acting_agent,
            action="ticket.status_changed",
            obj=ticket,
            changes={"status": [old, status]},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "status": status},
            ticket=ticket,
        )
    return ticket


def _takes_it_themselves(acting_agent: Actor, ticket: Ticket, assignee: Any) -> bool:
    """An agent taking an unassigned ticket for themselves: not a reassignment."""
    return (
        isinstance(acting_agent, ActingAgent)
        and assignee is not None
        and assignee.pk == acting_agent.user.pk
        and ticket.assignee_id is None
    )


def assign_ticket(*, acting_agent: Actor, ticket: Ticket, assignee: Any) -> Ticket:
    """Give a ticket to a member of the same merchant (or to nobody): supervisors and up; an
    agent may only take an unassigned ticket in reach for themselves."""
    require_ticket_in_reach(acting_agent, ticket)
    if assignee is not None and not assignee.memberships.filter(tenant=ticket.tenant_id).exists():
        raise BadInput(_("That person is not an agent of this merchant"), field="assignee")
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        old = ticket.assignee_id
        new = assignee.pk if assignee is not None else None
        if old == new:
            return ticket
        # Checked on the locked row: a ticket someone else took a moment ago is a reassignment.
        if not _takes_it_themselves(acting_agent, ticket, assignee):
            require(acting_agent, Capability.REASSIGN)
        ticket.assignee = assignee
        ticket.save(update_fields=["assignee", "updated_at"])
        record_audit(
            actor=acting_agent,
            action="ticket.assigned",
            obj=ticket,
            changes={"assignee": [old, new]},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "assignee": new},
            ticket=ticket,
        )
    return ticket


def tag_ticket(*, acting_agent: Actor, ticket: Ticket, names: list[str]) -> list[str]:
    """Add tags to a ticket in reach; returns the tags that were new on it."""
    require_ticket_in_reach(acting_agent, ticket)
    added = []
    with transaction.atomic():
        for name in {n.strip().lower() for n in names if n.strip()}:
            tag, _ = Tag.objects.get_or_create(name=name[:60])
            _, created = TicketTag.objects.get_or_create(ticket=ticket, tag=tag)
            if created:
                added.append(tag.name)
        if added:
            record_audit(
                actor=acting_agent, action="ticket.tagged", obj=ticket, changes={"added": added}
            )
    return sorted(added)


def link_order(*, acting_agent: Actor, ticket: Ticket, order: Order) -> Ticket:
    """Link the order a ticket in reach is about (the first link wins; agents may change it)."""
    require_ticket_in_reach(acting_agent, ticket)
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.order_id == order.pk:
            return ticket
        old = ticket.order_id
        ticket.order = order
        ticket.save(update_fields=["order", "updated_at"])
        record_audit(
            actor=acting_agent,
            action="ticket.order_linked",
            obj=ticket,
            changes={"order": [old, order.pk]},
        )
    return ticket


def add_note(*, acting_agent: Actor, ticket: Ticket, text: str) -> Message:
    """An internal note on a ticket in reach: visible to agents only, never sent to the
    customer."""
    require_ticket_in_reach(acting_agent, ticket)
    text = (text or "").strip()
    if not text:
        raise BadInput(_("A note needs some text"), field="text")
    with transaction.atomic():
        message = Message.objects.create(
            ticket=ticket,
            direction=Message.Direction.NOTE,
            channel=ticket.channel,
            author_user=acting_agent.user,
            body_text=text,
            full_text=text,
            delivery_state=Message.Delivery.NOT_SENT,
        )
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
        record_audit(actor=acting_agent, action="message.note_added", obj=message)
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.message",
            {"ticket": ticket.number, "direction": "note"},
            ticket=ticket,
        )
    return message


def apply_status_chosen_with_reply(*, message: Message) -> Ticket:
    """The status an agent chose with a reply takes effect once the reply is sent, unless
    someone changed the ticket's status after the reply was written: the later choice wins."""
    then_status = message.metadata.get("then_status")
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=message.ticket_id)
        if not then_status or ticket.status == then_status:
            return ticket
        # A reply sent hours later (retried, or sent again by hand) must not undo a status an
        # agent, or the customer's next message, set in the meantime.
        changed_since = ticket.status != message.metadata.get(
            "status_when_written", ticket.status
        ) or (
            AuditEvent.objects.filter(
                object_type="ticket",
                object_id=str(ticket.pk),
                action="ticket.status_changed",
                created_at__gt=message.created_at,
            ).exists()
        )
        if changed_since or then_status not in ALLOWED_TRANSITIONS[ticket.status]:
            return ticket
        # The author's choice was checked when the reply was written; the helpdesk carries it
        # out now, even if they have left the merchant since, and the log still names them.
        return change_ticket_status(
            acting_agent=SystemActor(on_behalf_of=message.author_user),
            ticket=ticket,
            status=then_status,
        )
