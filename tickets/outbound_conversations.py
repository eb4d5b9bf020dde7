"""Agents start conversations as well as answer them: a new ticket whose first message is the
agent's, to a customer's address, on one of the merchant's email channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import assignment, audit, composer, search, services
from tickets.audit import AuditKind
from tickets.incoming import Identity
from tickets.models import Channel, IdentityKind, Message, Ticket

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from channels_in.models import ChannelAccount

Status = Ticket.Status

# What the agent may leave a conversation they start in once it is sent.
STATUSES_AFTER_SENDING = (Status.PENDING, Status.OPEN, Status.SOLVED)


def start_conversation(
    *,
    acting_agent: ActingAgent,
    account: ChannelAccount,
    to: str,
    subject: str,
    text: str,
    cc: Sequence[str] | str = (),
    bcc: Sequence[str] | str = (),
    attachments: Sequence[File] = (),
    status: str = Status.PENDING,
) -> Message:
    """Write first to a customer (found by their address, else new) through an active email
    channel of the merchant: a new ticket, assigned to the agent who wrote, whose message is
    delivered like a reply; the ticket takes ``status`` once it is sent."""
    from channels_in import outbound

    require(acting_agent, Capability.WORK_TICKETS)
    tenant = require_tenant()
    _check_account(account, tenant_id=tenant.pk)
    address = services.normalise_identity(kind=IdentityKind.EMAIL, value=to)
    subject = " ".join((subject or "").split())[:255]
    if not subject:
        raise BadInput(_("A new conversation needs a subject"), field="subject")
    text = (text or "").strip()
    if not text:
        raise BadInput(_("A new conversation needs some text"), field="text")
    if status not in STATUSES_AFTER_SENDING:
        raise BadInput(_("Unknown status %(status)s") % {"status": status}, field="status")
    cc, bcc = composer.copy_addresses(cc, field="cc"), composer.copy_addresses(bcc, field="bcc")
    composer.check_outgoing(channel=account.kind, files=attachments, cc=cc, bcc=bcc)
    composer.check_files(attachments, tenant=tenant)

    stored = composer.WrittenFiles()
    with stored.removed_on_failure(), transaction.atomic():
        customer = services.customer_for(identities=[Identity(IdentityKind.EMAIL, address)])
        routed = assignment.route(
            customer=customer, channel=account.kind, text=f"{subject}\n{text}"
        )
        ticket = services.draft_ticket(
            customer=customer,
            subject=subject,
            channel=account.kind,
            group=routed.group,
            language=routed.language,
            category=routed.category,
            search_words=search.document_words(address, text),
        )
        # The agent who writes works it: open and theirs, not waiting in a queue, and their
        # message is the ticket's first response.
        now = timezone.now()
        ticket.status = Status.OPEN
        ticket.assignee = acting_agent.user
        ticket.assigned_at = ticket.first_responded_at = now
        fields = ["status", "assignee", "assigned_at", "first_responded_at"]
        ticket.save(update_fields=fields + assignment.queue_fields(ticket))
        # The subject token and the Message-ID carry the ticket's number, so the message is
        # written after it is numbered: the counter stays locked for a few more rows, which a
        # conversation started by hand can afford.
        services.number_ticket(acting_agent=acting_agent, ticket=ticket, routed_by=routed.rule)
        message = Message(
            ticket=ticket,
            direction=Message.Direction.OUTBOUND,
            channel=account.kind,
            channel_account=account,
            author_user=acting_agent.user,
            body_text=text,
            full_text=text,
            delivery_state=Message.Delivery.QUEUED,
            then_status=status,
            status_when_written=Status.OPEN,
            cc=cc,
            bcc=bcc,
            metadata={"to": address, "starts_conversation": True},
        )
        outbound.prepare_reply(message)
        message.save()
        composer.attach_files(message, attachments, stored=stored)
        audit.record_all(
            [
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.TICKET_ASSIGNED,
                    obj=ticket,
                    changes={"assignee": (None, acting_agent.user.pk)},
                ),
                audit.entry(
                    actor=acting_agent,
                    kind=AuditKind.MESSAGE_REPLY_QUEUED,
                    obj=message,
                    details={"channel": account.kind, "then_status": status, "to": address},
                ),
            ]
        )
        outbound.hand_over(message)
    return message


def _check_account(account: ChannelAccount | None, *, tenant_id: int) -> None:
    """The channel must be this merchant's, active, and able to send mail."""
    if account is None or account.tenant_id != tenant_id:
        raise BadInput(_("Choose one of this merchant's email channels"), field="account")
    if not account.is_active or account.paused:
        raise BadInput(
            _("The channel %(channel)s is not active") % {"channel": account.name},
            field="account",
        )
    if account.kind != Channel.EMAIL or not hasattr(account, "mailbox"):
        raise BadInput(
            _("The channel %(channel)s cannot send email") % {"channel": account.name},
            field="account",
        )


def sending_accounts() -> QuerySet[ChannelAccount]:
    """The merchant's email channels a new conversation can go out through."""
    from channels_in.models import ChannelAccount

    return (
        ChannelAccount.objects.filter(
            kind=Channel.EMAIL, is_active=True, paused=False, mailbox__isnull=False
        )
        .select_related("mailbox")
        .order_by("name", "pk")
    )
