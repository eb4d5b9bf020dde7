"""Spam and blocked senders: tickets set aside (``Ticket.ignored_at``) and the senders whose
later messages are set aside as they arrive.

The rules, in the merchant's words:
- anyone who may work a ticket may mark it as spam, and mark it as not spam again: a spam
  ticket leaves its agent and its queue, its service-level clocks stop, and it waits in the
  "Spam" view; "not spam" puts it back as a new ticket would be (routed, queued, clocks running);
- anyone who may work a ticket may block the sender it came from (an email address, a phone
  number, a WeChat openid, a chat visitor) and lift that block again from the ticket: both are
  undoable and audited, and spam is fought fastest by whoever reads it; the merchant-wide list
  of blocks (``/settings/blocked/``) is for supervisors and up, who may lift any block there;
- a blocked sender's messages are still stored (nothing a customer sends is lost), on a ticket
  set aside as "blocked sender": nobody is assigned or told, no automatic reply goes out and no
  escalation trigger looks at it. Lifting the block makes their next message a normal one; the
  tickets already set aside stay in the Spam view until someone marks them "not spam".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import (
    SYSTEM,
    ActingAgent,
    Actor,
    Capability,
    require,
    require_ticket_in_reach,
)
from helpdesk.tenancy import require_tenant
from tickets import assignment, audit
from tickets.audit import AuditKind
from tickets.models import Block, CustomerIdentity, IdentityKind, Message, Ticket
from tickets.models.workspace import IgnoredReason

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from tickets.incoming import InboundMessage

# The kinds of sender a block can name: those a message arrives from.
BLOCKABLE_KINDS = (IdentityKind.EMAIL, IdentityKind.PHONE, IdentityKind.WECHAT, IdentityKind.CHAT)
MAX_REASON_CHARS = 200

# What a set-aside ticket no longer has: an agent, a place in a queue, running clocks.
_SET_ASIDE_FIELDS = [
    "ignored_at",
    "ignored_reason",
    "assignee",
    "queued_at",
    "first_response_due_at",
    "resolution_due_at",
    "updated_at",
]


def _set_aside(ticket: Ticket, reason: str) -> None:
    """Mark ``ticket`` (locked by the caller) as ignored for ``reason`` and save it."""
    ticket.ignored_at = timezone.now()
    ticket.ignored_reason = reason
    ticket.assignee = None
    ticket.queued_at = None
    # Stopped clocks: the service-level sweep never marks a set-aside ticket as missed.
    ticket.first_response_due_at = ticket.resolution_due_at = None
    ticket.save(update_fields=_SET_ASIDE_FIELDS)


def _publish(ticket: Ticket, ignored: str) -> None:
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.updated",
        {"ticket": ticket.number, "ignored": ignored},
        ticket=ticket,
    )


# --- spam ----------------------------------------------------------------------------------------


def mark_spam(*, acting_agent: Actor, ticket: Ticket) -> Ticket:
    """Set a ticket in reach aside as spam: unassigned, out of its queue, clocks stopped.
    Audited; a ticket already set aside is left as it is."""
    require_ticket_in_reach(acting_agent, ticket)
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.ignored_at is not None:
            return ticket
        old_assignee = ticket.assignee_id
        _set_aside(ticket, IgnoredReason.SPAM)
        changes: dict[str, tuple[object, object]] = {"ignored_reason": ("", IgnoredReason.SPAM)}
        if old_assignee is not None:
            changes["assignee"] = (old_assignee, None)
        audit.record(
            actor=acting_agent, kind=AuditKind.TICKET_MARKED_SPAM, obj=ticket, changes=changes
        )
        _after_leaving_agent(ticket, old_assignee)
        _publish(ticket, IgnoredReason.SPAM)
    return ticket


def _after_leaving_agent(ticket: Ticket, old_assignee: int | None) -> None:
    from tickets.services import routing_after_change

    routing_after_change(
        ticket,
        freed_room=old_assignee is not None and ticket.status in assignment.ACTIVE_STATUSES,
    )


def not_spam(*, acting_agent: Actor, ticket: Ticket) -> Ticket:
    """Put a set-aside ticket in reach back to work as a new one would be: routed to a group if it
    has none, waiting in its queue while open, its service-level clocks running. Audited."""
    from tickets import service_levels

    require_ticket_in_reach(acting_agent, ticket)
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        if ticket.ignored_at is None:
            return ticket
        old_reason = ticket.ignored_reason
        ticket.ignored_at = None
        ticket.ignored_reason = ""
        fields = ["ignored_at", "ignored_reason", "updated_at"]
        routed = None
        if ticket.group_id is None:
            routed = assignment.route(
                customer=ticket.customer,
                channel=ticket.channel,
                text=f"{ticket.subject}\n{_first_words(ticket)}",
                order=ticket.order,
            )
            if routed.group is not None:
                ticket.group = routed.group
                fields.append("group")
        fields += service_levels.start_clocks(ticket)
        fields += assignment.queue_fields(ticket)
        ticket.save(update_fields=fields)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_NOT_SPAM,
            obj=ticket,
            changes={"ignored_reason": (old_reason, "")},
        )
        if routed is not None and routed.group is not None:
            audit.record(
                actor=acting_agent,
                kind=AuditKind.TICKET_ROUTED,
                obj=ticket,
                changes={"group": (None, routed.group.name)},
                details={"rule": routed.rule},
            )
        _after_leaving_agent(ticket, None)
        _publish(ticket, "")
    return ticket


def _first_words(ticket: Ticket) -> str:
    """The start of the customer's first message: what routing reads for the language."""
    first = (
        ticket.messages.filter(direction=Message.Direction.INBOUND)
        .order_by("created_at", "pk")
        .values_list("body_text", flat=True)
        .first()
    )
    return (first or "")[:2000]


# --- blocking senders ----------------------------------------------------------------------------


def _normalised(kind: str, value: str) -> str:
    from tickets.services import normalise_identity

    if kind not in BLOCKABLE_KINDS:
        raise BadInput(
            _(
                "Only an email address, a phone number, a WeChat openid or a chat visitor can be blocked"
            ),
            field="kind",
        )
    return normalise_identity(kind=kind, value=value, region=require_tenant().phone_region)


def sender_identities(ticket: Ticket) -> list[CustomerIdentity]:
    """The contacts the ticket's customer writes from that a block can name, in the order they
    were learned."""
    return list(
        CustomerIdentity.objects.filter(
            customer_id=ticket.customer_id, kind__in=BLOCKABLE_KINDS
        ).order_by("created_at", "pk")
    )


def _require_sender_of(ticket: Ticket, kind: str, value: str) -> None:
    if not any(i.kind == kind and i.value == value for i in sender_identities(ticket)):
        raise BadInput(
            _("%(value)s is not a contact of this ticket's customer") % {"value": value},
            field="value",
        )


def block_sender(
    *,
    acting_agent: Actor,
    kind: str,
    value: str,
    reason: str = "",
    ticket: Ticket | None = None,
) -> Block:
    """Block a sender, so that their later messages are stored set aside. From a ticket in reach
    (any agent who works it; the sender must be one of its customer's contacts, and the ticket
    is set aside too), or from the settings page (supervisors and up). Audited; a sender already
    blocked keeps their block."""
    value = _normalised(kind, value)
    reason = " ".join((reason or "").split())[:MAX_REASON_CHARS]
    if ticket is not None:
        require_ticket_in_reach(acting_agent, ticket)
        _require_sender_of(ticket, kind, value)
    else:
        require(acting_agent, Capability.SUPERVISE)
    user = acting_agent.user if isinstance(acting_agent, ActingAgent) else None
    with transaction.atomic():
        block = Block.objects.filter(kind=kind, value=value, lifted_at__isnull=True).first()
        if block is None:
            try:
                with transaction.atomic():
                    block = Block.objects.create(
                        kind=kind, value=value, reason=reason, created_by=user
                    )
            except IntegrityError:  # blocked by a colleague a moment ago
                block = Block.objects.get(kind=kind, value=value, lifted_at__isnull=True)
            else:
                details: dict[str, object] = {"sender": value, "identity_kind": kind}
                if reason:
                    details["reason"] = reason
                if ticket is not None:
                    details["ticket"] = ticket.number
                audit.record(
                    actor=acting_agent, kind=AuditKind.SENDER_BLOCKED, obj=block, details=details
                )
        if ticket is not None:
            _set_aside_for_block(acting_agent, ticket)
    return block


def _set_aside_for_block(acting_agent: Actor, ticket: Ticket) -> None:
    ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
    if ticket.ignored_at is not None:
        return
    old_assignee = ticket.assignee_id
    _set_aside(ticket, IgnoredReason.BLOCKED)
    changes: dict[str, tuple[object, object]] = {"ignored_reason": ("", IgnoredReason.BLOCKED)}
    if old_assignee is not None:
        changes["assignee"] = (old_assignee, None)
    audit.record(actor=acting_agent, kind=AuditKind.TICKET_IGNORED, obj=ticket, changes=changes)
    _after_leaving_agent(ticket, old_assignee)
    _publish(ticket, IgnoredReason.BLOCKED)


def lift_block(*, acting_agent: Actor, block: Block, ticket: Ticket | None = None) -> Block:
    """Lift a block: the sender's next message is a normal one again. From a ticket in reach
    whose customer the block names (any agent who works it), or from the settings page
    (supervisors and up). Audited; a block already lifted stays as it was."""
    if ticket is not None:
        require_ticket_in_reach(acting_agent, ticket)
        _require_sender_of(ticket, block.kind, block.value)
    else:
        require(acting_agent, Capability.SUPERVISE)
    with transaction.atomic():
        block.refresh_from_db(from_queryset=Block.objects.select_for_update())
        if block.lifted_at is not None:
            return block
        block.lifted_at = timezone.now()
        block.lifted_by = acting_agent.user if isinstance(acting_agent, ActingAgent) else None
        block.save(update_fields=["lifted_at", "lifted_by"])
        details: dict[str, object] = {"sender": block.value, "identity_kind": block.kind}
        if ticket is not None:
            details["ticket"] = ticket.number
        audit.record(
            actor=acting_agent, kind=AuditKind.SENDER_BLOCK_LIFTED, obj=block, details=details
        )
    return block


def is_blocked(kind: str, value: str) -> bool:
    """Whether the active merchant has an active block on this sender (``value`` as stored)."""
    return Block.objects.filter(kind=kind, value=value, lifted_at__isnull=True).exists()


def sender_is_blocked(inbound: InboundMessage) -> bool:
    """Whether any of a message's sender identities is blocked, in one query (ingest's check)."""
    blocks = blocks_of_sender(inbound)
    return blocks is not None and blocks.exists()


def blocks_of_sender(inbound: InboundMessage) -> QuerySet[Block] | None:
    """The blocks in force on a message's sender identities (for ingest to fold into its own
    lookup), or None when none of them is of a kind that can be blocked."""
    from tickets.services import normalise_identity

    region = require_tenant().phone_region
    wanted = Q()
    for identity in inbound.identities:
        if identity.kind not in BLOCKABLE_KINDS:
            continue
        try:
            value = normalise_identity(kind=identity.kind, value=identity.value, region=region)
        except BadInput:
            continue
        wanted |= Q(kind=identity.kind, value=value)
    if not wanted:
        return None
    return Block.objects.filter(wanted, lifted_at__isnull=True)


def set_aside_new_ticket(ticket: Ticket) -> None:
    """A blocked sender's new ticket, drafted in the filing transaction: set aside before it is
    numbered, never routed, queued or clocked (the helpdesk acts, audited)."""
    _set_aside(ticket, IgnoredReason.BLOCKED)
    audit.record(
        actor=SYSTEM,
        kind=AuditKind.TICKET_IGNORED,
        obj=ticket,
        changes={"ignored_reason": ("", IgnoredReason.BLOCKED)},
    )


# --- what the ticket page shows ------------------------------------------------------------------


@dataclass(frozen=True)
class SenderRow:
    identity: CustomerIdentity
    block: Block | None


@dataclass(frozen=True)
class SpamPanel:
    """The ticket page's spam box: whether and why the ticket is set aside, and its senders."""

    ignored: bool
    reason: str
    senders: list[SenderRow] = field(default_factory=list)
    latest_sender: str = ""

    @property
    def unblocked(self) -> list[CustomerIdentity]:
        """The contacts a block can still name, the latest message's sender first."""
        return [row.identity for row in self.senders if row.block is None]


def _latest_sender(ticket: Ticket, loaded: Sequence[Message] | None) -> str:
    if loaded is None:
        latest = (
            ticket.messages.filter(direction=Message.Direction.INBOUND)
            .order_by("-created_at", "-pk")
            .values_list("metadata__from", flat=True)
            .first()
        )
    else:
        inbound = [m for m in loaded if m.direction == Message.Direction.INBOUND]
        newest = max(inbound, key=lambda m: (m.created_at, m.pk), default=None)
        metadata = newest.metadata if newest is not None else None
        latest = metadata.get("from") if isinstance(metadata, dict) else None
    return str(latest or "").strip().lower()


def spam_panel(
    ticket: Ticket,
    *,
    identities: Sequence[CustomerIdentity] | None = None,
    loaded: Sequence[Message] | None = None,
) -> SpamPanel:
    """What the ticket page offers: mark as spam or not, and block or unblock each contact its
    customer writes from (the one the latest message came from first), in one query when the
    page has read the customer's identities and the ticket's messages (``identities``,
    ``loaded``), three otherwise."""
    if identities is None:
        identities = sender_identities(ticket)
    else:
        identities = sorted(
            (i for i in identities if i.kind in BLOCKABLE_KINDS),
            key=lambda i: (i.created_at, i.pk),
        )
    blocks = (
        {
            (b.kind, b.value): b
            for b in Block.objects.filter(
                lifted_at__isnull=True,
                kind__in=[i.kind for i in identities],
                value__in=[i.value for i in identities],
            )
        }
        if identities
        else {}
    )
    latest = _latest_sender(ticket, loaded)
    rows = [SenderRow(i, blocks.get((i.kind, i.value))) for i in identities]
    rows.sort(key=lambda row: row.identity.value.lower() != latest)
    reason = (
        str(IgnoredReason(ticket.ignored_reason).label)
        if ticket.ignored_reason in IgnoredReason.values
        else ""
    )
    return SpamPanel(
        ignored=ticket.ignored_at is not None, reason=reason, senders=rows, latest_sender=latest
    )


def blocks_for_settings() -> tuple[list[Block], list[Block]]:
    """The active merchant's active blocks, newest first, and the last 100 lifted ones."""
    rows = Block.objects.select_related("created_by", "lifted_by")
    active = list(rows.filter(lifted_at__isnull=True).order_by("-created_at", "-pk"))
    lifted = list(rows.filter(lifted_at__isnull=False).order_by("-lifted_at", "-pk")[:100])
    return active, lifted
