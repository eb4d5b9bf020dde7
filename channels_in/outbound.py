"""Agents' replies to customers: create the message, then deliver it through its channel."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import registry
from channels_in.base import AdapterError, OutboundReply
from channels_in.models import ChannelAccount
from helpdesk import realtime
from helpdesk.errors import BadInput
from tickets import services
from tickets.models import IdentityKind, Message, Ticket

Delivery = Message.Delivery


def reply_account(ticket: Ticket) -> ChannelAccount:
    """The channel account the customer last wrote to, else the merchant's first of the kind."""
    last_inbound = (
        ticket.messages.filter(direction=Message.Direction.INBOUND).order_by("-created_at").first()
    )
    account_id = last_inbound.metadata.get("account_id") if last_inbound else None
    accounts = ChannelAccount.objects.filter(kind=ticket.channel, is_active=True)
    if ticket.channel == "email":
        accounts = accounts.filter(mailbox__isnull=False)
    account = accounts.filter(pk=account_id).first() if account_id else None
    account = account or accounts.order_by("pk").first()
    if account is None:
        raise BadInput(
            _("This merchant has no active %(channel)s channel to reply on")
            % {"channel": ticket.get_channel_display()}
        )
    return account


def reply_address(ticket: Ticket) -> str:
    """Where a reply goes: the address the ticket's customer last wrote from, else theirs on
    file. Never a third party who joined the thread."""
    last_from_customer = (
        ticket.messages.filter(
            direction=Message.Direction.INBOUND, author_customer_id=ticket.customer_id
        )
        .order_by("-created_at")
        .first()
    )
    if last_from_customer and last_from_customer.metadata.get("from"):
        return last_from_customer.metadata["from"]
    identity = ticket.customer.identities.filter(kind=IdentityKind.EMAIL).first()
    if identity is None:
        raise BadInput(_("The customer has no email address to reply to"))
    return identity.value


def reply_subject(ticket: Ticket) -> str:
    subject = ticket.subject
    if not subject.lower().startswith(("re:", "回复:", "回复：")):
        subject = f"Re: {subject}"
    return f"{subject} [#{ticket.number}]"


def send_reply(
    *, actor: Any, ticket: Ticket, text: str, status: str = Ticket.Status.PENDING
) -> Message:
    """Reply to the customer on the ticket's channel; delivery happens after commit, with retries.

    The ticket takes ``status`` once the reply is sent: a reply that never reached the customer
    does not leave the ticket waiting for them.
    """
    from channels_in.tasks import deliver_message

    text = (text or "").strip()
    if not text:
        raise BadInput(_("A reply needs some text"), field="text")
    if status not in Ticket.Status.values:
        raise BadInput(_("Unknown status %(status)s") % {"status": status}, field="status")
    if ticket.channel != "email":
        raise BadInput(f"Replies on {ticket.get_channel_display()} are not connected yet")
    account = reply_account(ticket)
    domain = account.mailbox.address.rsplit("@", 1)[-1]
    thread = list(
        ticket.messages.exclude(external_id="")
        .exclude(direction=Message.Direction.NOTE)
        .order_by("created_at")
        .values_list("external_id", flat=True)
    )
    with transaction.atomic():
        message = Message.objects.create(
            ticket=ticket,
            direction=Message.Direction.OUTBOUND,
            channel=ticket.channel,
            author_user=actor,
            subject=reply_subject(ticket),
            body_text=text,
            full_text=text,
            external_id=f"{uuid.uuid4().hex}.{ticket.number}@{domain}",
            delivery_state=Delivery.QUEUED,
            metadata={
                "account_id": account.pk,
                "to": reply_address(ticket),
                "references": [ref for ref in thread if not ref.startswith("sha256:")][-20:],
                "then_status": status,
            },
        )
        services.record_audit(actor=actor, action="message.reply_queued", obj=message)
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
        transaction.on_commit(lambda: deliver_message.delay(ticket.tenant_id, message.pk))
    return message


def deliver(*, message_id: int, final: bool = False) -> str:
    """Send one queued outbound message; records the delivery state the agent sees.

    The message is claimed (queued -> sending) with a conditional UPDATE, so a task delivered
    twice sends the mail once.
    """
    claimed = Message.objects.filter(pk=message_id, delivery_state=Delivery.QUEUED).update(
        delivery_state=Delivery.SENDING,
        delivery_attempts=F("delivery_attempts") + 1,
        delivery_changed_at=timezone.now(),
    )
    message = Message.objects.select_related("ticket").get(pk=message_id)
    if claimed != 1:
        return message.delivery_state
    try:
        account = ChannelAccount.objects.select_related("tenant").get(
            pk=message.metadata["account_id"]
        )
        reply = OutboundReply(
            message=message,
            to=message.metadata["to"],
            subject=message.subject,
            text=message.body_text,
        )
        registry.adapter_for(account).send(reply)
    except Exception as error:
        exc = error
        if not isinstance(exc, AdapterError):
            # A broken configuration (the mailbox was removed, say): never leave it "sending".
            exc = AdapterError(f"{type(error).__name__}: {error}", permanent=True)
        state = Delivery.FAILED if (exc.permanent or final) else Delivery.QUEUED
        Message.objects.filter(pk=message.pk).update(
            delivery_state=state, delivery_error=exc.message
        )
        if state == Delivery.FAILED:
            realtime.publish_after_commit(
                message.tenant_id, "message.failed", {"ticket": message.ticket.number}
            )
        if exc is error:
            raise
        raise exc from error
    Message.objects.filter(pk=message.pk).update(
        delivery_state=Delivery.SENT, delivery_error="", sent_at=timezone.now()
    )
    then_status = message.metadata.get("then_status")
    ticket = message.ticket
    if (
        then_status
        and ticket.status != then_status
        and then_status in services.ALLOWED_TRANSITIONS[ticket.status]
    ):
        services.change_ticket_status(actor=message.author_user, ticket=ticket, status=then_status)
    realtime.publish_after_commit(
        message.tenant_id, "message.sent", {"ticket": message.ticket.number}
    )
    return Delivery.SENT


def resend(*, actor: Any, message: Message) -> Message:
    """An agent sends again a reply that failed, or that has been stuck sending (its worker
    died mid-send) for longer than a send can take."""
    from channels_in.tasks import deliver_message

    if message.direction != Message.Direction.OUTBOUND or not message.can_be_resent:
        raise BadInput(_("Only a failed reply can be sent again"))
    with transaction.atomic():
        resent = Message.objects.filter(
            pk=message.pk, delivery_state=message.delivery_state
        ).update(delivery_state=Delivery.QUEUED, delivery_changed_at=timezone.now())
        if resent != 1:
            return message
        services.record_audit(actor=actor, action="message.resent", obj=message)
        transaction.on_commit(lambda: deliver_message.delay(message.tenant_id, message.pk))
    return message
