"""Actions that change tickets, customers and orders. Views, tasks and tests all call these."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django.dispatch
import phonenumbers
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.db.statements import Writes
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.models import Tenant
from helpdesk.permissions import (
    SYSTEM,
    ActingAgent,
    Actor,
    Capability,
    SystemActor,
    require,
    require_ticket_in_reach,
)
from helpdesk.tenancy import require_tenant
from tickets import assignment, audit, search, spam
from tickets.audit import AuditKind
from tickets.incoming import Identity, InboundEvent, InboundMessage
from tickets.models import (
    ACCOUNT_SCOPED_KINDS,
    Attachment,
    AuditEvent,
    Customer,
    CustomerEvent,
    CustomerIdentity,
    Group,
    GroupMember,
    IdentityKind,
    Message,
    Order,
    Tag,
    Ticket,
    TicketTag,
)
from tickets.threading import find_thread, normalise_external_id, orders_named

logger = logging.getLogger(__name__)

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


def normalise_identity(*, kind: str, value: str, region: str = "CN") -> str:
    """The canonical form of an identity: lower-case email, E.164 phone, others trimmed."""
    value = (value or "").strip()
    if kind == IdentityKind.EMAIL:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise BadInput(_("%(value)s is not an email address") % {"value": value}, field="email")
        return value.lower()
    if kind == IdentityKind.PHONE:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException as exc:
            raise BadInput(
                _("%(value)s is not a phone number") % {"value": value}, field="phone"
            ) from exc
        if not phonenumbers.is_possible_number(number):
            raise BadInput(_("%(value)s is not a phone number") % {"value": value}, field="phone")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not value:
        raise BadInput(_("An empty contact cannot name a customer"), field=kind)
    return value


def resolve_customer(*, kind: str, value: str, name: str = "", lock: bool = False) -> Customer:
    """The customer behind one identity; a new customer when no identity matches."""
    return customer_for(identities=[Identity(kind, value)], name=name, lock=lock)


def customer_for(
    *,
    identities: list[Identity],
    name: str = "",
    account_id: int | None = None,
    lock: bool = False,
) -> Customer:
    """The customer behind a sender's identities, strongest first; a new customer when none
    matches. Kinds in ``ACCOUNT_SCOPED_KINDS`` are matched within ``account_id``'s channel.

    Identities nobody has yet are learned for the customer, so a person who wrote by email and
    then through the JSON API with the same address has one timeline. An identity that belongs
    to someone else stays theirs.

    With ``lock`` (inside a transaction) a known customer's row stays locked until the
    transaction ends, taken by the same query that finds the identity. A customer created here
    needs no lock: no other transaction can see the row before this one commits.
    """
    tenant = require_tenant()
    wanted = _normalised_identities(identities, region=tenant.phone_region, account_id=account_id)
    if not wanted:
        raise BadInput(_("A customer needs an address, a number or an id"), field="identity")
    matches = Q()
    for kind, value, account in wanted:
        matches |= Q(kind=kind, value=value, account_id=account)
    rows = CustomerIdentity.objects.select_related("customer").filter(matches)
    if lock:
        rows = rows.select_for_update(of=("customer",)).order_by("customer_id")
    found = {(i.kind, i.value, i.account_id): i for i in rows}
    known = next((found[key] for key in wanted if key in found), None)
    if known is None:
        return _new_customer(wanted, name=name, rows=rows)
    customer = known.customer
    if name and not customer.name:
        customer.name = name
        customer.save(update_fields=["name"])
    for kind, value, account in wanted:
        if (kind, value, account) not in found:
            _learn_identity(customer, kind=kind, value=value, account_id=account)
    return customer


def _normalised_identities(
    identities: list[Identity], *, region: str, account_id: int | None
) -> list[tuple[str, str, int | None]]:
    wanted: list[tuple[str, str, int | None]] = []
    for identity in identities:
        value = normalise_identity(kind=identity.kind, value=identity.value, region=region)
        account = account_id if identity.kind in ACCOUNT_SCOPED_KINDS else None
        if identity.kind in ACCOUNT_SCOPED_KINDS and account is None:
            raise BadInput(
                _("A %(kind)s identity belongs to a channel") % {"kind": identity.kind},
                field=identity.kind,
            )
        if (identity.kind, value, account) not in wanted:
            wanted.append((identity.kind, value, account))
    return wanted


def _new_customer(wanted: list[tuple[str, str, int | None]], *, name: str, rows: Any) -> Customer:
    # No savepoint of its own: a failure here fails the caller's whole transaction anyway. The
    # first identity's savepoint is the one that lets a lost race recover.
    kind, value, account = wanted[0]
    with transaction.atomic(savepoint=False):
        customer = Customer.objects.create(name=name or value.split("@")[0])
        try:
            with transaction.atomic():
                CustomerIdentity.objects.create(
                    customer=customer, kind=kind, value=value, account_id=account
                )
        except IntegrityError:
            # Another worker created the same identity a moment ago: use theirs.
            customer.delete()
            identity = rows.filter(kind=kind, value=value, account_id=account).first()
            if identity is None:
                raise
            return identity.customer
    for kind, value, account in wanted[1:]:
        _learn_identity(customer, kind=kind, value=value, account_id=account)
    return customer


def _learn_identity(customer: Customer, *, kind: str, value: str, account_id: int | None) -> None:
    """Give a customer an identity nobody has; one somebody has stays theirs."""
    try:
        with transaction.atomic():
            CustomerIdentity.objects.create(
                customer=customer, kind=kind, value=value, account_id=account_id
            )
    except IntegrityError:
        return
    audit.record(
        actor=SYSTEM,
        kind=AuditKind.CUSTOMER_IDENTITY_LEARNED,
        obj=customer,
        changes={kind: (None, value)},
    )


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
        audit.record(
            actor=acting_agent,
            kind=AuditKind.IDENTITY_ADDED,
            obj=customer,
            changes={kind: (None, value)},
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
    language: str = "",
    category: str = "",
    last_customer_message_at: datetime | None = None,
    search_words: str = "",
) -> Ticket:
    """A new ticket without its number yet, waiting in its group's queue with its service-level
    clocks running. The caller must call ``number_ticket`` as the last write of the same
    transaction: the merchant's counter stays locked from then until commit.

    Routing and clocks are written with the row, sparing an UPDATE each.
    """
    from tickets import service_levels

    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("draft_ticket() must run inside the transaction that numbers it")
    now = timezone.now()
    ticket = Ticket(
        number=None,
        subject=(subject or "").strip()[:255] or "(no subject)",
        channel=channel,
        customer=customer,
        order=order,
        priority=priority,
        reason_code=reason_code,
        group=group,
        language=language[:16],
        category=category[:100],
        last_customer_message_at=last_customer_message_at,
        queued_at=now,
    )
    # Found by search from the start: written with the row (tickets.search).
    ticket.search_text = search.new_ticket_document(ticket, search_words)
    service_levels.start_clocks(ticket)
    ticket.save(force_insert=True)
    return ticket


def number_ticket(
    *, acting_agent: Actor, ticket: Ticket, routed_by: str = "default group"
) -> Ticket:
    """Give a drafted ticket the merchant's next number: gapless and unique, because the counter
    row stays locked until the transaction ends and a rollback gives the number back.
    ``routed_by`` names the routing rule that chose its group, for the audit log."""
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
    audit.record_all(
        _opening_events(ticket, actor=acting_agent, number=ticket.number, rule=routed_by)
    )
    if ticket.ignored_at is not None:
        return ticket  # a blocked sender's ticket: nobody is told (tickets.spam)
    _announce_new_ticket(ticket)
    return ticket


def _announce_new_ticket(ticket: Ticket) -> None:
    """Tell the merchant's open pages (and webhook subscribers) about a new ticket, once its
    transaction commits."""
    from helpdesk import webhook_events

    webhook_events.ticket_created(ticket)
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.created",
        {"ticket": ticket.number, "subject": ticket.subject},
        ticket=ticket,
    )


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
        raise BadInput(_("Unknown status %(status)s") % {"status": status}, field="status")
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
        fields += assignment.queue_fields(ticket, now=now)
        ticket.save(update_fields=fields)
        active = assignment.ACTIVE_STATUSES
        routing_after_change(
            ticket,
            freed_room=ticket.assignee_id is not None and old in active and status not in active,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_STATUS_CHANGED,
            obj=ticket,
            changes={"status": (old, status)},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "status": status},
            ticket=ticket,
        )
    return ticket


def change_ticket_priority(*, acting_agent: Actor, ticket: Ticket, priority: str) -> Ticket:
    """Set a ticket's priority; its service-level clocks restart under that priority's targets
    (those already met or missed stay as they are), and the queue orders it anew."""
    from tickets import service_levels

    require_ticket_in_reach(acting_agent, ticket)
    if priority not in Ticket.Priority.values:
        raise BadInput(
            _("Unknown priority %(priority)s") % {"priority": priority}, field="priority"
        )
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        old = ticket.priority
        if old == priority:
            return ticket
        ticket.priority = priority
        ticket.save(update_fields=["priority", "updated_at"])
        service_levels.restart_clocks(ticket=ticket)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_PRIORITY_CHANGED,
            obj=ticket,
            changes={"priority": (old, priority)},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "priority": priority},
            ticket=ticket,
        )
    return ticket


def routing_after_change(ticket: Ticket, *, freed_room: bool) -> None:
    """After commit: a ticket that waits again is offered to an agent, and when its agent may
    have gained room (it left their open work) the queues are handed out."""
    from tickets import tasks

    tenant_id = require_tenant().pk
    if assignment.is_waiting(ticket) and ticket.group_id is not None:
        tasks.offer_ticket.delay_on_commit(tenant_id, ticket.pk)
    if freed_room:
        tasks.hand_out_queued.delay_on_commit(tenant_id, None)


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
        fields = ["assignee", "updated_at"]
        if assignee is not None:
            ticket.assigned_at = timezone.now()
            fields.append("assigned_at")
        fields += assignment.queue_fields(ticket)
        ticket.save(update_fields=fields)
        routing_after_change(
            ticket, freed_room=old is not None and ticket.status in assignment.ACTIVE_STATUSES
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_ASSIGNED,
            obj=ticket,
            changes={"assignee": (old, new)},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "assignee": new},
            ticket=ticket,
        )
    return ticket


def move_to_group(*, acting_agent: Actor, ticket: Ticket, group: Group) -> Ticket:
    """Move a ticket in reach to another group's queue (supervisors and up); its agent keeps it
    only if they belong to the new group, else it waits there for one of its agents."""
    require_ticket_in_reach(acting_agent, ticket)
    require(acting_agent, Capability.REASSIGN)
    if group is None or group.tenant_id != ticket.tenant_id:
        raise BadInput(_("Choose a group of this merchant"), field="group")
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.group_id == group.pk:
            return ticket
        old_group = Group.objects.filter(pk=ticket.group_id).values_list("name", flat=True).first()
        changes: dict[str, tuple[Any, Any]] = {"group": (old_group, group.name)}
        ticket.group = group
        fields = ["group", "updated_at"]
        old_assignee = ticket.assignee_id
        if (
            old_assignee is not None
            and not GroupMember.objects.filter(group=group, user_id=old_assignee).exists()
        ):
            # Their colleagues in the new group pick it up; it stays theirs only if they are one.
            ticket.assignee = None
            fields.append("assignee")
            changes["assignee"] = (old_assignee, None)
        fields += assignment.queue_fields(ticket)
        ticket.save(update_fields=fields)
        routing_after_change(
            ticket,
            freed_room="assignee" in changes and ticket.status in assignment.ACTIVE_STATUSES,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_ROUTED,
            obj=ticket,
            changes=changes,
            details={"rule": "moved by hand"},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "group": group.pk, "assignee": ticket.assignee_id},
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
            audit.record(
                actor=acting_agent,
                kind=AuditKind.TICKET_TAGGED,
                obj=ticket,
                details={"added": sorted(added)},
            )
            _announce_tags(ticket)
    return sorted(added)


def untag_ticket(*, acting_agent: Actor, ticket: Ticket, name: str) -> bool:
    """Take a tag off a ticket in reach; False when it did not carry it."""
    require_ticket_in_reach(acting_agent, ticket)
    with transaction.atomic():
        removed, _ = TicketTag.objects.filter(
            ticket=ticket, tag__name=name.strip().lower()
        ).delete()
        if removed:
            audit.record(
                actor=acting_agent,
                kind=AuditKind.TICKET_UNTAGGED,
                obj=ticket,
                details={"removed": [name.strip().lower()]},
            )
            _announce_tags(ticket)
    return bool(removed)


def _announce_tags(ticket: Ticket) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.updated",
        {"ticket": ticket.number, "group": ticket.group_id, "assignee": ticket.assignee_id},
        ticket=ticket,
    )


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
        search.note_order(ticket, order)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_ORDER_LINKED,
            obj=ticket,
            changes={"order": (old, order.pk)},
            details={"order_number": order.number},
        )
    return ticket


def write_note(*, ticket: Ticket, author: Any, text: str) -> Message:
    """The note row itself: agents only, never sent. Callers check, audit and index it."""
    return Message.objects.create(
        ticket=ticket,
        direction=Message.Direction.NOTE,
        channel=ticket.channel,
        author_user=author,
        body_text=text,
        full_text=text,
        delivery_state=Message.Delivery.NOT_SENT,
    )


def add_note(
    *, acting_agent: Actor, ticket: Ticket, text: str, attachments: Sequence[File] = ()
) -> Message:
    """An internal note on a ticket in reach, with files if any: visible to agents only, never
    sent to the customer."""
    from tickets import composer

    require_ticket_in_reach(acting_agent, ticket)
    text = (text or "").strip()
    if not text:
        raise BadInput(_("A note needs some text"), field="text")
    composer.check_files(attachments)
    stored = composer.WrittenFiles()
    with stored.removed_on_failure(), transaction.atomic():
        message = write_note(ticket=ticket, author=acting_agent.user, text=text)
        composer.attach_files(message, attachments, stored=stored)
        Ticket.objects.filter(pk=ticket.pk).update(
            updated_at=timezone.now(), search_text=search.appended(message.body_text)
        )
        audit.record(actor=acting_agent, kind=AuditKind.MESSAGE_NOTE_ADDED, obj=message)
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
    then_status = message.then_status
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=message.ticket_id)
        if not then_status or ticket.status == then_status:
            return ticket
        # A reply sent hours later (retried, or sent again by hand) must not undo a status an
        # agent, or the customer's next message, set in the meantime.
        changed_since = ticket.status != (message.status_when_written or ticket.status) or (
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


# --- what customers send ------------------------------------------------------------------------


def clean_text(value: str, limit: int | None = None) -> str:
    """Text as the database can hold it: no NUL characters, at most ``limit`` characters."""
    value = (value or "").replace("\x00", "")
    return value[:limit] if limit else value


def clean_json(value: object) -> object:
    """JSON as PostgreSQL's jsonb can hold it: no NUL characters in any string."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean_json(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


class AttachmentFiles:
    """Attachment files written for one payload, before its transaction, removed again if the
    transaction rolls back or never starts (``remove``)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def write(self, attachment: Attachment, content: bytes) -> None:
        attachment.file.save(attachment.filename, ContentFile(content), save=False)
        self.names.append(attachment.file.name)

    def remove(self) -> None:
        for name in self.names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("could not remove attachment file %s", name, exc_info=True)
        self.names.clear()


def write_attachments(inbound: InboundMessage, files: AttachmentFiles) -> list[Attachment]:
    """A message's attachments as unsaved rows, their files already written through ``files``
    (call before the filing transaction: slow disk work holds no lock and no transaction)."""
    tenant_id = require_tenant().pk
    attachments = []
    for item in inbound.attachments:
        attachment = Attachment(
            tenant_id=tenant_id,  # written without save(): TenantOwned.save does not run
            filename=clean_text(item.filename, 255) or "attachment",
            content_type=clean_text(item.content_type, 127),
            size=len(item.content) if not item.missing_reason else (item.size or 0),
            content_id=clean_text(item.content_id, 255),
            inline=item.inline,
            missing_reason=clean_text(item.missing_reason, 255),
        )
        if not item.missing_reason:
            files.write(attachment, item.content)
        attachments.append(attachment)
    return attachments


@dataclass
class Filed:
    message: Message
    ticket: Ticket
    new_ticket: bool


def filed_message(*, channel: str, external_id: str) -> Message | None:
    """The message already filed under a channel's id for it: a redelivery is recognised."""
    external_id = normalise_external_id(external_id)
    if not external_id:
        return None
    return (
        Message.objects.filter(channel=channel, external_id=external_id)
        .select_related("ticket")
        .first()
    )


def record_customer_message(
    *,
    inbound: InboundMessage,
    account_id: int | None,
    files: AttachmentFiles | None = None,
    attachments: list[Attachment] | None = None,
    also_write: AlsoWrite | None = None,
) -> Filed:
    """File a customer's message: the customer, the ticket it continues (reopened if the
    customer answered a solved one) or a new one, the message, its attachments and the live
    event. Call inside a transaction; the caller has already checked for a redelivery
    (``filed_message``) and decided the message should be filed.

    ``attachments`` come from ``write_attachments`` before the transaction; without them the
    files are written here, through ``files``. ``also_write`` adds the caller's own row
    changes to the statement that writes the message (see ``AlsoWrite``). The customer is locked so that two messages of
    one customer processed at the same moment thread onto one ticket, and a new ticket takes its
    number in the last write, holding the merchant's counter lock only until commit.
    """
    if attachments is None:
        attachments = write_attachments(inbound, files or AttachmentFiles())
    sender = sender_of_message(inbound, account_id=account_id)
    customer = sender.customer
    learn_what_the_channel_said(customer, inbound)
    ticket = find_thread(
        customer=customer, inbound=inbound, account_id=account_id, new_customer=sender.is_new
    )
    blocked = sender.blocked
    if ticket is not None and (ticket.ignored_at is not None) != blocked:
        # A blocked sender never writes onto a ticket being worked, nor anyone else onto a
        # ticket set aside as spam: each starts a ticket of its own.
        ticket = None
    order = None
    if ticket is None or ticket.order_id is None:
        order = find_order_reference(sender=sender)
    customer_wrote_at = inbound.sent_at or timezone.now()
    message = Message(
        tenant_id=require_tenant().pk,  # written without save(): TenantOwned.save does not run
        direction=Message.Direction.INBOUND,
        channel=inbound.channel,
        channel_account_id=account_id,
        conversation_id=clean_text(inbound.conversation_id, 255),
        author_customer=customer,
        subject=clean_text(inbound.subject, 255),
        body_text=clean_text(inbound.text),
        full_text=clean_text(inbound.full_text or inbound.text),
        body_html=clean_text(inbound.html),
        external_id=normalise_external_id(inbound.external_id),
        sent_at=inbound.sent_at,
        metadata=clean_json(
            {
                **inbound.metadata,
                "from": inbound.sender_value,
                "recipients": inbound.recipients,
                "reply_to_ids": [normalise_external_id(i) for i in inbound.reply_to_ids[:20]],
            }
        ),
    )
    first_words = (
        search.document_words(inbound.sender_value, inbound.text) if ticket is None else ""
    )
    if ticket is None and blocked:
        ticket = draft_ticket(
            customer=customer,
            subject=clean_text(inbound.subject),
            channel=inbound.channel,
            order=order,
            last_customer_message_at=customer_wrote_at,
            search_words=first_words,
        )
        spam.set_aside_new_ticket(ticket)  # stored, never routed (tickets.spam)
        _write_message(message, ticket=ticket, attachments=attachments, also_write=also_write)
        number_ticket(acting_agent=SYSTEM, ticket=ticket)
        # A blocked sender's message: kept on its set-aside ticket, nobody is told.
        return Filed(message=message, ticket=ticket, new_ticket=True)
    if ticket is None:
        ticket = _open_ticket_with_message(
            inbound=inbound,
            customer=customer,
            order=order,
            message=message,
            attachments=attachments,
            customer_wrote_at=customer_wrote_at,
            search_words=first_words,
            also_write=also_write,
        )
        new_ticket = True
    else:
        new_ticket = False
        if order is not None and ticket.order_id is None:
            link_order(acting_agent=SYSTEM, ticket=ticket, order=order)
        if ticket.status in {Status.PENDING, Status.SOLVED, Status.ON_HOLD} and not blocked:
            # The customer answered: the ticket needs an agent again.
            change_ticket_status(acting_agent=SYSTEM, ticket=ticket, status=Status.OPEN)
        _write_message(
            message,
            ticket=ticket,
            attachments=attachments,
            ticket_changes={
                "last_customer_message_at": customer_wrote_at,
                "updated_at": timezone.now(),
                "search_text": search.appended(message.body_text),
            },
            also_write=also_write,
        )
    if ticket.ignored_at is not None:
        # A blocked sender's message: kept on its set-aside ticket, nobody is told.
        return Filed(message=message, ticket=ticket, new_ticket=new_ticket)
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.message",
        {"ticket": ticket.number, "direction": "inbound", "subject": ticket.subject},
        ticket=ticket,
    )
    after_customer_wrote(ticket, message=message, new_ticket=new_ticket)
    return Filed(message=message, ticket=ticket, new_ticket=new_ticket)


# Called with the Writes of the statement that files a message, and SQL values (or ids) for the
# message's and its ticket's ids, to add the caller's own writes (the pipeline marks its raw
# payload processed) to that statement: no round trip of their own, and nothing after the
# ticket-number lock but COMMIT.
AlsoWrite = Callable[[Writes, Any, Any], None]


def _saved(*objs: Any) -> None:
    """Mark instances written by ``Writes`` as saved ones."""
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def _write_message(
    message: Message,
    *,
    ticket: Ticket,
    attachments: list[Attachment],
    ticket_changes: dict[str, Any] | None = None,
    also_write: AlsoWrite | None = None,
) -> None:
    """Insert ``message`` on an existing ticket with its attachments, and apply
    ``ticket_changes`` to the ticket, in one statement."""
    writes = Writes()
    message.ticket = ticket
    writes.insert("new_message", [message], returning=["id"])
    if attachments:
        for attachment in attachments:
            attachment.message_id = Writes.ref("(SELECT id FROM new_message)")
        writes.insert("new_attachments", attachments)
    if ticket_changes:
        writes.update("changed_ticket", Ticket.objects.filter(pk=ticket.pk), ticket_changes)
    if also_write is not None:
        also_write(writes, Writes.ref("(SELECT id FROM new_message)"), ticket.pk)
    (message.pk,) = writes.run("SELECT id FROM new_message")
    _saved(message)
    for attachment in attachments:
        attachment.message = message
        _saved(attachment)


def _opening_events(ticket: Ticket, *, actor: Actor, number: Any, rule: str) -> list[AuditEvent]:
    """The audit rows of a new ticket: opened, and routed to its group (and by which rule:
    routing rules grow, the log keeps saying which one). ``number``: the ticket's number, or
    None while the statement that writes it takes it."""
    events = [
        audit.entry(
            actor=actor,
            kind=AuditKind.TICKET_OPENED,
            obj=ticket,
            details={"number": number, "channel": ticket.channel},
        )
    ]
    if ticket.group_id is not None:
        events.append(
            audit.entry(
                actor=actor,
                kind=AuditKind.TICKET_ROUTED,
                obj=ticket,
                changes={"group": (None, ticket.group.name)},
                details={"rule": rule},
            )
        )
    return events


def _routing_groups(priority: str) -> tuple[list[Group], Any]:
    """The merchant's groups in id order, and the service-level target of ``priority``
    (a ServiceTarget or None) read with them, in one query. Without groups there is no row to
    carry the target: ([], ``READ_TARGET``), and the clocks read it themselves."""
    from tickets import service_levels
    from tickets.models import ServiceTarget

    targets = ServiceTarget.objects.filter(priority=priority)
    groups = list(
        Group.objects.order_by("pk").annotate(
            target_pk=Subquery(targets.values("pk")[:1]),
            target_first_response=Subquery(targets.values("first_response_minutes")[:1]),
            target_resolution=Subquery(targets.values("resolution_minutes")[:1]),
        )
    )
    if not groups:
        return [], service_levels.READ_TARGET
    first = groups[0]
    if first.target_pk is None:
        return groups, None
    return groups, ServiceTarget(
        pk=first.target_pk,
        tenant_id=first.tenant_id,
        priority=priority,
        first_response_minutes=first.target_first_response,
        resolution_minutes=first.target_resolution,
    )


def _open_ticket_with_message(
    *,
    inbound: InboundMessage,
    customer: Customer,
    order: Order | None,
    message: Message,
    attachments: list[Attachment],
    customer_wrote_at: datetime,
    search_words: str,
    also_write: AlsoWrite | None = None,
) -> Ticket:
    """A customer's new ticket, routed to its group with its clocks running, numbered with the
    merchant's next number, with its first message, attachments and audit rows: one statement.

    The merchant's counter row is locked by that statement, the last one before COMMIT (the
    caller's ``also_write`` rides in it), so workers filing new tickets of one merchant wait for
    each other only for an instant. The number is gapless: a rollback gives it back.
    """
    from tickets import service_levels

    tenant = require_tenant()
    priority = inbound.priority or Ticket.Priority.NORMAL
    groups, target = _routing_groups(priority)
    routed = assignment.route(
        customer=customer,
        channel=inbound.channel,
        text=f"{inbound.subject}\n{inbound.text}",
        order=order,
        category=inbound.category,
        groups=groups,
    )
    ticket = Ticket(
        tenant_id=tenant.pk,  # written without save(): TenantOwned.save does not run
        subject=clean_text(inbound.subject).strip()[:255] or "(no subject)",
        channel=inbound.channel,
        customer=customer,
        order=order,
        priority=priority,
        group=routed.group,
        language=routed.language[:16],
        category=routed.category[:100],
        last_customer_message_at=customer_wrote_at,
        queued_at=timezone.now(),
    )
    ticket.search_text = search.new_ticket_document(ticket, search_words)
    service_levels.start_clocks(ticket, target=target)

    writes = Writes()
    writes.raw(
        "counter",
        f"UPDATE {Tenant._meta.db_table} SET last_ticket_number = last_ticket_number + 1 "
        "WHERE id = %s RETURNING last_ticket_number",
        [tenant.pk],
    )
    ticket.number = Writes.ref("(SELECT last_ticket_number FROM counter)")
    writes.insert("new_ticket", [ticket], returning=["id", "number"])
    message.ticket_id = Writes.ref("(SELECT id FROM new_ticket)")
    writes.insert("new_message", [message], returning=["id"])
    if attachments:
        for attachment in attachments:
            attachment.message_id = Writes.ref("(SELECT id FROM new_message)")
        writes.insert("new_attachments", attachments)
    events = _opening_events(ticket, actor=SYSTEM, number=None, rule=routed.rule)
    for event in events:
        event.tenant_id = tenant.pk
        event.object_id = Writes.ref("(SELECT CAST(id AS TEXT) FROM new_ticket)")
    # The number is known only inside the statement: the opening row takes it from there.
    number_into_details = (
        "jsonb_set(%s::jsonb, '{details,number}', to_jsonb((SELECT number FROM new_ticket)))"
        if connection.vendor == "postgresql"
        else "json_set(%s, '$.details.number', (SELECT number FROM new_ticket))"  # SQLite
    )
    events[0].changes = Writes.ref(number_into_details, [json.dumps(events[0].changes)])
    writes.insert("new_audit", events)
    if also_write is not None:
        also_write(
            writes,
            Writes.ref("(SELECT id FROM new_message)"),
            Writes.ref("(SELECT id FROM new_ticket)"),
        )
    row = writes.run(
        "SELECT new_ticket.id, new_ticket.number, new_message.id FROM new_ticket, new_message"
    )
    ticket.pk, ticket.number, message.pk = row
    message.ticket = ticket
    _saved(ticket, message)
    for attachment in attachments:
        attachment.message = message
        _saved(attachment)
    _announce_new_ticket(ticket)
    return ticket


# Sent once a customer's message is filed, inside its transaction, with ``ticket``, ``message``
# and ``new_ticket``: escalation triggers listen. Receivers do their work after commit.
customer_wrote = django.dispatch.Signal()


def after_customer_wrote(ticket: Ticket, *, message: Message, new_ticket: bool) -> None:
    """Once the message is filed: a new ticket is offered to an agent (a reopened one already
    was, by its change of status), a customer who wrote while the group is closed is told
    when it opens (both after commit), and ``customer_wrote`` is sent."""
    from tickets import business_hours, tasks

    tenant_id = require_tenant().pk
    customer_wrote.send(sender=Ticket, ticket=ticket, message=message, new_ticket=new_ticket)
    if new_ticket and ticket.group_id is not None:
        tasks.offer_ticket.delay_on_commit(tenant_id, ticket.pk)
    group = ticket.group
    if (
        group is not None
        and not group.always_open
        and not business_hours.calendar_for(group).is_open(timezone.now())
    ):
        tasks.notify_out_of_hours.delay_on_commit(tenant_id, ticket.pk)


def learn_what_the_channel_said(customer: Customer, inbound: InboundMessage) -> None:
    """Keep what the channel says about the customer (their language, VIP standing, the persona
    group they chose) on the customer, for routing; a persona no group has is left unapplied."""
    changed: list[str] = []
    locale = clean_text(inbound.customer_locale, 16)
    if locale and customer.locale != locale:
        customer.locale = locale
        changed.append("locale")
    if inbound.customer_vip is not None and customer.is_vip != inbound.customer_vip:
        customer.is_vip = inbound.customer_vip
        changed.append("is_vip")
    if inbound.persona:
        persona_group = Group.objects.filter(persona=inbound.persona).first()
        if persona_group is not None and customer.persona_group_id != persona_group.pk:
            customer.persona_group = persona_group
            changed.append("persona_group")
    if changed:
        customer.save(update_fields=changed)


@dataclass
class Sender:
    """Who sent a message, as ingest needs it: the customer (locked), whether they were created
    for this message, whether a block stands on the sender, and their order the message names."""

    customer: Customer
    is_new: bool
    blocked: bool
    order_id: int | None = None


def sender_of_message(inbound: InboundMessage, *, account_id: int | None) -> Sender:
    """The customer who sent a message, locked until the transaction ends so that messages of
    one customer are threaded one after the other; found with the sender's blocks and named
    orders in one query, or created with their identity in one statement."""
    sender_name = clean_text(inbound.sender_name, 200)
    blocks = spam.blocks_of_sender(inbound)
    if not inbound.sender_value:
        # Filed by hand with no address at all: visible on its ticket, nobody to reply to.
        customer = Customer.objects.create(name=sender_name or _("Unknown sender"))
        return Sender(customer, is_new=True, blocked=blocks is not None and blocks.exists())
    tenant = require_tenant()
    wanted = _normalised_identities(
        [Identity(i.kind, clean_text(i.value)) for i in inbound.identities],
        region=tenant.phone_region,
        account_id=account_id,
    )
    matches = Q()
    for kind, value, account in wanted:
        matches |= Q(kind=kind, value=value, account_id=account)
    # Customer rows are locked only here: no deadlock between workers.
    rows = (
        CustomerIdentity.objects.select_related("customer")
        .filter(matches)
        .select_for_update(of=("customer",))
        .order_by("customer_id")
    )
    facts: dict[str, Any] = {}
    if blocks is not None:
        facts["sender_blocked"] = Exists(blocks)
    order_lookups = orders_named(inbound)
    for n, orders in enumerate(order_lookups):
        facts[f"named_order_{n}"] = Subquery(
            orders.filter(customer=OuterRef("customer_id")).values("pk")[:1]
        )
    found = {(i.kind, i.value, i.account_id): i for i in rows.annotate(**facts)}
    known = next((found[key] for key in wanted if key in found), None)
    if known is None:
        return _new_sender(wanted, name=sender_name, blocks=blocks, rows=rows)
    customer = known.customer
    if sender_name and not customer.name:
        customer.name = sender_name
        customer.save(update_fields=["name"])
    for kind, value, account in wanted:
        if (kind, value, account) not in found:
            _learn_identity(customer, kind=kind, value=value, account_id=account)
    named = (getattr(known, f"named_order_{n}") for n in range(len(order_lookups)))
    return Sender(
        customer,
        is_new=False,
        blocked=bool(getattr(known, "sender_blocked", False)),
        order_id=next((pk for pk in named if pk is not None), None),
    )


def find_order_reference(*, sender: Sender) -> Order | None:
    """The sender's own order their message names, found with the sender
    (``sender_of_message``): read only when there is one."""
    if sender.order_id is None:
        return None
    return Order.objects.filter(pk=sender.order_id).first()


def _new_sender(
    wanted: list[tuple[str, str, int | None]], *, name: str, blocks: Any, rows: Any
) -> Sender:
    """A customer for a sender nobody knows: the customer, their first identity and whether
    the sender is blocked in one statement. Another worker that created the same identity a
    moment ago wins: their customer is used."""
    kind, value, account = wanted[0]
    tenant_id = require_tenant().pk
    customer = Customer(tenant_id=tenant_id, name=name or value.split("@")[0])
    identity = CustomerIdentity(
        tenant_id=tenant_id,
        customer_id=Writes.ref("(SELECT id FROM new_customer)"),
        kind=kind,
        value=value,
        account_id=account,
    )
    writes = Writes()
    writes.insert("new_customer", [customer], returning=["id"])
    writes.insert("new_identity", [identity], returning=["customer_id"], ignore_conflicts=True)
    blocked_sql, blocked_params = "false", []
    if blocks is not None:
        sql, params = blocks.values("pk").query.sql_with_params()
        blocked_sql, blocked_params = f"EXISTS ({sql})", list(params)
    customer.pk, identity_customer_id, blocked = writes.run(
        f"SELECT new_customer.id, (SELECT customer_id FROM new_identity), {blocked_sql} "
        "FROM new_customer",
        blocked_params,
    )
    _saved(customer)
    if identity_customer_id is None:
        Customer.objects.filter(pk=customer.pk).delete()
        theirs = rows.filter(kind=kind, value=value, account_id=account).first()
        if theirs is None:
            raise IntegrityError(f"identity {kind} {value} neither created nor found")
        return Sender(theirs.customer, is_new=False, blocked=blocked)
    for kind, value, account in wanted[1:]:
        _learn_identity(customer, kind=kind, value=value, account_id=account)
    return Sender(customer, is_new=True, blocked=blocked)


def record_customer_event(*, event: InboundEvent, account_id: int | None) -> CustomerEvent:
    """Put something a customer did that is not a message on their timeline; a redelivered
    event is recognised by its id and recorded once."""
    external_id = normalise_external_id(event.external_id)
    existing = CustomerEvent.objects.filter(channel=event.channel, external_id=external_id).first()
    if existing is not None:
        return existing
    if event.kind not in CustomerEvent.Kind.values:
        raise BadInput(_("Unknown event %(kind)s") % {"kind": event.kind}, field="kind")
    customer = customer_for(
        identities=event.identities,
        name=clean_text(event.sender_name, 200),
        account_id=account_id,
    )
    recorded = CustomerEvent.objects.create(
        customer=customer,
        channel=event.channel,
        channel_account_id=account_id,
        kind=event.kind,
        external_id=external_id,
        conversation_id=clean_text(event.conversation_id, 255),
        data=clean_json(event.data),
        occurred_at=event.occurred_at or timezone.now(),
    )
    realtime.publish_after_commit(
        recorded.tenant_id,
        "customer.event",
        {"customer": customer.pk, "kind": event.kind},
    )
    return recorded


# --- agents' replies ----------------------------------------------------------------------------


def reply_to_customer(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    text: str,
    status: str = Status.PENDING,
    attachments: Sequence[File] = (),
    cc: Sequence[str] | str = (),
    bcc: Sequence[str] | str = (),
) -> Message:
    """Reply to the customer on a ticket in reach, on its channel. The channel addresses the
    reply and delivers it after commit, with retries. Files and CC/BCC go only where the
    channel carries them (tickets.composer).

    The ticket takes ``status`` once the reply is sent: a reply that never reached the customer
    does not leave the ticket waiting for them.
    """
    # The channel layer delivers; tickets only decides what is said and by whom.
    from channels_in import outbound
    from tickets import composer, service_levels

    require_ticket_in_reach(acting_agent, ticket)
    text = (text or "").strip()
    if not text:
        raise BadInput(_("A reply needs some text"), field="text")
    if status not in Status.values:
        raise BadInput(_("Unknown status %(status)s") % {"status": status}, field="status")
    cc, bcc = composer.copy_addresses(cc, field="cc"), composer.copy_addresses(bcc, field="bcc")
    composer.check_outgoing(channel=ticket.channel, files=attachments, cc=cc, bcc=bcc)
    composer.check_files(attachments)
    message = Message(
        ticket=ticket,
        direction=Message.Direction.OUTBOUND,
        channel=ticket.channel,
        author_user=acting_agent.user,
        body_text=text,
        full_text=text,
        delivery_state=Message.Delivery.QUEUED,
        then_status=status,
        # The status applies on sending only if nobody changed it since (see
        # apply_status_chosen_with_reply).
        status_when_written=ticket.status,
        cc=cc,
        bcc=bcc,
    )
    outbound.prepare_reply(message)
    stored = composer.WrittenFiles()
    with stored.removed_on_failure(), transaction.atomic():
        take_unassigned_on_reply(acting_agent=acting_agent, ticket=ticket)
        message.save()
        composer.attach_files(message, attachments, stored=stored)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MESSAGE_REPLY_QUEUED,
            obj=message,
            details={"channel": ticket.channel, "then_status": status},
        )
        Ticket.objects.filter(pk=ticket.pk).update(
            updated_at=timezone.now(), search_text=search.appended(message.body_text)
        )
        if isinstance(acting_agent, ActingAgent):  # a person answered, not an automatic notice
            service_levels.note_first_response(ticket=ticket, at=message.created_at)
        outbound.hand_over(message)
    return message


def take_unassigned_on_reply(*, acting_agent: Actor, ticket: Ticket) -> None:
    """A member who answers an unassigned ticket takes it (audited as an assignment). Call
    inside the reply's transaction: the ticket stays locked, so a colleague who took it a
    moment earlier keeps it and the reply still goes out."""
    if not isinstance(acting_agent, ActingAgent) or acting_agent.membership is None:
        return  # the helpdesk's own notices, and platform support, take nothing
    if ticket.assignee_id is not None:
        return
    ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
    if ticket.assignee_id is None:
        assign_ticket(acting_agent=acting_agent, ticket=ticket, assignee=acting_agent.user)
