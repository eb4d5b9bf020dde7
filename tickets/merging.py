"""Merging: two tickets about one thing become one, and two customers who are one person (a
WeChat-only or phone-only customer who also wrote by email) share one timeline.

The merged ticket or customer stays as a row with ``merged_into`` set, so old links and the
audit log still lead somewhere; its content moves to the one it was merged into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.permissions import (
    ActingAgent,
    Actor,
    Capability,
    SystemActor,
    require,
    require_ticket_in_reach,
    tickets_in_reach,
    works_every_group,
)
from tickets import assignment, audit, search
from tickets.audit import AuditKind
from tickets.models import (
    Customer,
    CustomerEvent,
    CustomerIdentity,
    Message,
    Order,
    Ticket,
    TicketTag,
)
from tickets.services import routing_after_change, write_note

Status = Ticket.Status


def _locked(model: Any, *pks: int) -> dict[int, Any]:
    """Rows locked in pk order, whoever asks: two merges of the same pair never deadlock."""
    rows = model.objects.select_for_update().filter(pk__in=pks).order_by("pk")
    return {row.pk: row for row in rows}


# --- tickets -----------------------------------------------------------------------------------


def ticket_merge_refusal(*, source: Ticket, target: Ticket) -> str:
    """Why ``source`` may not be merged into ``target``, in words, or "" when it may."""
    if source.pk == target.pk:
        return _("A ticket cannot be merged into itself")
    if source.merged_into_id is not None:
        return _("Ticket #%(number)s was already merged") % {"number": source.number}
    if target.merged_into_id is not None:
        return _("Ticket #%(number)s was merged into another ticket: merge into that one") % {
            "number": target.number
        }
    if target.status == Status.CLOSED:
        return _("Ticket #%(number)s is closed: reopen it or choose another") % {
            "number": target.number
        }
    return ""


def merge_tickets(*, acting_agent: Actor, source: Ticket, target: Ticket) -> Ticket:
    """Merge ``source`` into ``target`` (both in the person's reach): its messages (with their
    attachments), tags and linked order move over, each ticket gets a note saying so, and the
    source is closed for good with ``merged_into`` set. Tickets of different customers may be
    merged (the page warns first); a ticket is never merged into itself, into a merged ticket
    or into a closed one, and a merged ticket is never merged again."""
    require_ticket_in_reach(acting_agent, source)
    require_ticket_in_reach(acting_agent, target)
    if source.pk == target.pk:
        raise BadInput(ticket_merge_refusal(source=source, target=target), field="into")
    with transaction.atomic():
        rows = _locked(Ticket, source.pk, target.pk)
        source, target = rows[source.pk], rows[target.pk]
        refusal = ticket_merge_refusal(source=source, target=target)
        if refusal:
            raise BadInput(refusal, field="into")
        now = timezone.now()
        moved = Message.objects.filter(ticket=source).update(ticket=target)
        _move_tags(source=source, target=target)

        target_fields = ["updated_at"]
        if target.order_id is None and source.order_id is not None:
            target.order_id = source.order_id
            target_fields.append("order")
        if source.last_customer_message_at and (
            target.last_customer_message_at is None
            or source.last_customer_message_at > target.last_customer_message_at
        ):
            target.last_customer_message_at = source.last_customer_message_at
            target_fields.append("last_customer_message_at")
        target.save(update_fields=target_fields)

        old_status = source.status
        was_active = source.assignee_id is not None and old_status in assignment.ACTIVE_STATUSES
        source.merged_into = target
        source.status = Status.CLOSED
        source.closed_at = source.closed_at if old_status == Status.CLOSED else now
        # A merged ticket waits for nothing: its clocks stop and it leaves its queue.
        source.first_response_due_at = None
        source.resolution_due_at = None
        source_fields = [
            "merged_into",
            "status",
            "closed_at",
            "first_response_due_at",
            "resolution_due_at",
            "updated_at",
        ]
        source_fields += assignment.queue_fields(source, now=now)
        source.save(update_fields=source_fields)
        routing_after_change(source, freed_room=was_active)

        write_note(
            author=acting_agent.user,
            ticket=target,
            text=_("Merged from #%(number)s (%(subject)s)")
            % {"number": source.number, "subject": source.subject},
        )
        write_note(
            author=acting_agent.user,
            ticket=source,
            text=_("Merged into #%(number)s") % {"number": target.number},
        )
        source_changes: dict[str, tuple[Any, Any]] = {"merged_into": (None, target.number)}
        if old_status != Status.CLOSED:
            source_changes["status"] = (old_status, Status.CLOSED)
        audit.record_all(
            [
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.TICKET_MERGED,
                    obj=source,
                    changes=source_changes,
                ),
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.TICKET_MERGED,
                    obj=target,
                    details={"merged_from": source.number, "messages_moved": moved},
                ),
            ]
        )
        search.refresh_ticket(target)
        search.refresh_ticket(source)
        for ticket, payload in (
            (source, {"status": Status.CLOSED, "merged_into": target.number}),
            (target, {"merged_from": source.number}),
        ):
            realtime.publish_after_commit(
                ticket.tenant_id,
                "ticket.updated",
                {"ticket": ticket.number, **payload},
                ticket=ticket,
            )
    return target


def _move_tags(*, source: Ticket, target: Ticket) -> None:
    """The source's tags the target did not have move to it; the source keeps none."""
    on_target = TicketTag.objects.filter(ticket=target).values("tag_id")
    TicketTag.objects.filter(ticket=source).exclude(tag_id__in=on_target).update(ticket=target)
    TicketTag.objects.filter(ticket=source).delete()


# --- customers ---------------------------------------------------------------------------------


def may_merge_customer(acting_agent: Actor, customer: Customer) -> bool:
    """Whether this person may merge ``customer`` into another: supervisors and up always
    (they work every group and supervise), an agent only when every one of the customer's
    tickets is in their reach, so nobody moves conversations they may not open."""
    if isinstance(acting_agent, SystemActor):
        return True
    if not acting_agent.can(Capability.WORK_TICKETS):
        return False
    if acting_agent.can(Capability.SUPERVISE):
        return True
    tickets = Ticket.objects.filter(customer=customer)
    return tickets.count() == tickets_in_reach(acting_agent, tickets).count()


def customer_merge_refusal(*, source: Customer, target: Customer) -> str:
    """Why ``source`` may not be merged into ``target``, in words, or "" when it may."""
    if source.pk == target.pk:
        return _("A customer cannot be merged with themselves")
    for customer in (source, target):
        if customer.merged_into_id is not None:
            return _("%(customer)s was already merged into another customer") % {
                "customer": customer
            }
    return ""


@dataclass(frozen=True)
class CustomerMerge:
    """What a customer merge moved, for the agent and the audit log."""

    target: Customer
    identities: int
    tickets: int
    orders: int
    events: int


def merge_customers(*, acting_agent: Actor, source: Customer, target: Customer) -> CustomerMerge:
    """Merge ``source`` into ``target``: one person from now on. Identities, tickets (with
    their messages), orders and channel events move to the target, the source's notes are
    appended to the target's, and the source keeps only ``merged_into``, so their next message
    on any channel lands on the target. See ``may_merge_customer`` for who may."""
    require(acting_agent, Capability.WORK_TICKETS)
    if source.pk == target.pk:
        raise BadInput(customer_merge_refusal(source=source, target=target), field="into")
    with transaction.atomic():
        # The pipeline locks a customer while it files their message: a message filed during
        # the merge waits, then finds the identity on the target.
        rows = _locked(Customer, source.pk, target.pk)
        source, target = rows[source.pk], rows[target.pk]
        refusal = customer_merge_refusal(source=source, target=target)
        if refusal:
            raise BadInput(refusal, field="into")
        # Checked on the locked customer: no new ticket of theirs arrives in between.
        if not may_merge_customer(acting_agent, source):
            raise PermissionDenied(
                _("Some of this customer's tickets belong to groups you do not work in"),
                capability=Capability.SUPERVISE.value,
            )
        # Identities are unique per merchant (or channel account) whoever holds them, so the
        # source's never collide with the target's: they all move.
        identities = CustomerIdentity.objects.filter(customer=source).update(customer=target)
        tickets = Ticket.objects.filter(customer=source).update(customer=target)
        Message.objects.filter(author_customer=source).update(author_customer=target)
        orders = Order.objects.filter(customer=source).update(customer=target)
        events = CustomerEvent.objects.filter(customer=source).update(customer=target)
        # Customers merged into the source earlier now point at the target directly.
        Customer.objects.filter(merged_into=source).update(merged_into=target)

        fields = _take_over_profile(source=source, target=target)
        if fields:
            target.save(update_fields=fields)
        source.merged_into = target
        source.save(update_fields=["merged_into"])

        counts = {
            "identities_moved": identities,
            "tickets_moved": tickets,
            "orders_moved": orders,
            "events_moved": events,
        }
        audit.record_all(
            [
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.CUSTOMER_MERGED,
                    obj=source,
                    changes={"merged_into": (None, str(target))},
                    details=counts,
                ),
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.CUSTOMER_MERGED,
                    obj=target,
                    details={"merged_from": str(source), **counts},
                ),
            ]
        )
        # Every ticket of the person is now found by all their names and addresses.
        for ticket in Ticket.objects.filter(customer=target).select_related("customer"):
            search.refresh_ticket(ticket)
        realtime.publish_after_commit(
            target.tenant_id, "customer.merged", {"customer": target.pk, "from": source.pk}
        )
    return CustomerMerge(
        target=target, identities=identities, tickets=tickets, orders=orders, events=events
    )


def _take_over_profile(*, source: Customer, target: Customer) -> list[str]:
    """What the target lacks and the source knew: a name, a language, VIP standing, a persona
    group; the source's notes are appended. Returns the fields changed."""
    fields = []
    if source.notes.strip():
        header = _("From %(customer)s:") % {"customer": source}
        target.notes = "\n\n".join(p for p in (target.notes.strip(), header, source.notes) if p)
        fields.append("notes")
    if not target.name and source.name:
        target.name = source.name
        fields.append("name")
    if not target.locale and source.locale:
        target.locale = source.locale
        fields.append("locale")
    if source.is_vip and not target.is_vip:
        target.is_vip = True
        fields.append("is_vip")
    if target.persona_group_id is None and source.persona_group_id is not None:
        target.persona_group_id = source.persona_group_id
        fields.append("persona_group")
    return fields


def merge_candidates(
    *, agent: ActingAgent, customer: Customer, query: str, limit: int = 20
) -> QuerySet[Customer]:
    """The merchant's other customers (not merged away) whose name, email, phone or id contains
    ``query`` and whom ``agent`` may look at (as ``selectors.access_customer`` decides): whom
    ``customer`` may be merged with."""
    query = query.strip()
    if not query or (query.isascii() and len(query) < 2):  # one Chinese character is a name
        return Customer.objects.none()
    matches = Q(name__icontains=query) | Q(identities__value__icontains=query)
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) >= 5:  # a phone number typed with spaces or dashes
        matches |= Q(identities__value__contains=digits)
    found = Customer.objects.filter(matches, merged_into__isnull=True).exclude(pk=customer.pk)
    if not works_every_group(agent):
        in_reach = tickets_in_reach(agent, Ticket.objects.all()).values("customer_id")
        found = found.filter(pk__in=in_reach)
    return (
        Customer.objects.filter(pk__in=found.values("pk"))
        .prefetch_related("identities")
        .order_by("name", "pk")[:limit]
    )


def merged_customer_target(*, agent: ActingAgent, pk: int) -> int | None:
    """The customer a merged customer now lives on (its pk), or None when ``pk`` was not
    merged: their page sends agents there."""
    if not agent.can(Capability.WORK_TICKETS):
        return None
    return Customer.objects.filter(pk=pk).values_list("merged_into_id", flat=True).first()
