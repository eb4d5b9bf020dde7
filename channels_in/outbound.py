"""Delivering agents' replies through their channel: claim, send, retry, record the state.

``tickets.services.reply_to_customer`` decides what is said; this module picks the channel
account, lets the channel's adapter address the reply (``prepare_reply``) and send it, and keeps
the delivery state agents see (queued, sending, sent, retrying, failed).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Subquery, When
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import registry
from channels_in.base import AdapterError
from channels_in.models import ChannelAccount
from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, require_ticket_in_reach
from tickets import audit, services
from tickets.audit import AuditKind
from tickets.models import Message, Ticket

logger = logging.getLogger(__name__)

Delivery = Message.Delivery


class DeliveryDeferred(Exception):
    """A try failed for a reason that may pass: the reply waits, shown as retrying, for the
    try after ``attempt``, which the caller schedules."""

    def __init__(self, error: AdapterError, *, attempt: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempt = attempt


def reply_account(ticket: Ticket) -> ChannelAccount:
    """The channel account the customer last wrote to, else the merchant's first of the kind
    that can send replies."""
    try:
        adapter_class = registry.adapter_class(ticket.channel)
    except AdapterError:
        raise BadInput(
            _("Replies on %(channel)s are not connected yet")
            % {"channel": ticket.get_channel_display()}
        ) from None
    last_account = (
        ticket.messages.filter(direction=Message.Direction.INBOUND, channel_account__isnull=False)
        .order_by("-created_at")
        .values("channel_account_id")[:1]
    )
    accounts = adapter_class.reply_accounts(
        ChannelAccount.objects.filter(kind=ticket.channel, is_active=True)
    )
    # One query: the account the customer last wrote to when it can still reply, else the first.
    account = (
        accounts.annotate(not_last=Case(When(pk=Subquery(last_account), then=0), default=1))
        .order_by("not_last", "pk")
        .first()
    )
    if account is None:
        raise BadInput(
            _("This merchant has no active %(channel)s channel to reply on")
            % {"channel": ticket.get_channel_display()}
        )
    return account


def prepare_reply(message: Message) -> None:
    """Give an unsaved reply its channel account, its conversation and the channel's addressing
    (``Adapter.prepare_reply``). Raises BadInput when the customer cannot be answered."""
    ticket = message.ticket
    # A new conversation names the account the agent chose; a reply takes the customer's.
    account = message.channel_account if message.channel_account_id else reply_account(ticket)
    message.channel_account = account
    message.conversation_id = (
        ticket.messages.filter(direction=Message.Direction.INBOUND, channel_account=account)
        .exclude(conversation_id="")
        .order_by("-created_at")
        .values_list("conversation_id", flat=True)
        .first()
        or ""
    )
    registry.adapter_for(account).prepare_reply(message)


def carries_files(channel: str) -> bool:
    """Whether replies on ``channel`` can carry the agent's files (email can; a channel whose
    adapter does not say so cannot, and the composer refuses files there)."""
    return _adapter_says(channel, "carries_files")


def carries_copies(channel: str) -> bool:
    """Whether replies on ``channel`` can go to further people in CC and BCC (email only)."""
    return _adapter_says(channel, "carries_copies")


def _adapter_says(channel: str, feature: str) -> bool:
    try:
        return bool(getattr(registry.adapter_class(channel), feature, False))
    except AdapterError:
        return False


def reply_recipient(ticket: Ticket) -> str:
    """Who a reply on the ticket would reach, as the agent reads it (an address, a customer
    id); raises BadInput saying why no reply can be sent."""
    draft = Message(ticket=ticket, direction=Message.Direction.OUTBOUND, channel=ticket.channel)
    prepare_reply(draft)
    return str(draft.metadata.get("to", ""))


def hand_over(message: Message) -> None:
    """Queue a reply's delivery for after the caller's transaction commits."""
    from channels_in.tasks import deliver_message

    deliver_message.delay_on_commit(message.tenant_id, message.pk)


def deliver(
    *, message_id: int, retry_in: int | None = None, after_attempt: int | None = None
) -> str:
    """Send one queued reply and record the delivery state the agent sees; return that state.

    The reply is claimed (queued -> sending) with a conditional UPDATE, so a task delivered
    twice sends the mail once. A scheduled retry passes ``after_attempt``, the try it follows:
    it claims the reply only if no other try (the agent's "Send now") came in between.

    When the try fails for a reason that may pass and ``retry_in`` is given, the reply stays
    queued, retrying in that many seconds, and ``DeliveryDeferred`` asks the caller to schedule
    that try. Without ``retry_in`` this is the last try and any failure is final.
    """
    message = Message.objects.select_related(
        "ticket", "author_user", "channel_account", "channel_account__tenant"
    ).get(pk=message_id)
    queued = Message.objects.filter(pk=message_id, delivery_state=Delivery.QUEUED)
    if after_attempt is not None:
        queued = queued.filter(delivery_attempts=after_attempt)
    account = message.channel_account
    if account is not None and account.paused:
        # Not tried: the server refused the channel itself and will again until an admin
        # fixes it and resumes the channel; then the agent sends the reply again.
        refused = queued.update(
            delivery_state=Delivery.FAILED,
            delivery_error=paused_error(account.last_error),
            delivery_changed_at=timezone.now(),
            delivery_next_attempt_at=None,
        )
        if refused == 1:
            _announce(message, "message.failed")
            return Delivery.FAILED
        message.refresh_from_db(fields=["delivery_state"])
        return message.delivery_state
    claimed = queued.update(
        delivery_state=Delivery.SENDING,
        delivery_attempts=F("delivery_attempts") + 1,
        delivery_changed_at=timezone.now(),
        delivery_next_attempt_at=None,
    )
    message.refresh_from_db(fields=["delivery_state", "delivery_attempts"])
    if claimed != 1:
        return message.delivery_state
    try:
        if account is None:
            raise AdapterError(_("The channel this reply was written on is gone"), permanent=True)
        registry.adapter_for(account).send(message)
    except Exception as error:
        exc = error
        if not isinstance(exc, AdapterError):
            # A broken configuration (the mailbox was removed, say): never leave it "sending".
            logger.exception("reply %s: delivery broke", message.pk)
            exc = AdapterError(f"{type(error).__name__}: {error}", permanent=True)
        return _fail_or_defer(message, account, exc, retry_in=retry_in)
    Message.objects.filter(pk=message.pk).update(
        delivery_state=Delivery.SENT,
        delivery_error="",
        delivery_changed_at=timezone.now(),
        sent_at=timezone.now(),
    )
    services.apply_status_chosen_with_reply(message=message)
    _announce(message, "message.sent")
    return Delivery.SENT


def paused_error(reason: str) -> str:
    """What a reply on a paused channel shows: the channel's own error."""
    return _("channel paused: %(reason)s") % {"reason": reason}


def _fail_or_defer(
    message: Message, account: ChannelAccount | None, error: AdapterError, *, retry_in: int | None
) -> str:
    """Record a failed try: final (permanent, or the last try), or waiting for the next."""
    now = timezone.now()
    reason = error.message
    if getattr(error, "pauses_channel", False) and account is not None:
        _pause_channel(account, reason)
        reason = paused_error(reason)
    if error.permanent or retry_in is None:
        logger.warning("reply %s failed: %s", message.pk, reason)
        Message.objects.filter(pk=message.pk).update(
            delivery_state=Delivery.FAILED,
            delivery_error=reason,
            delivery_changed_at=now,
            delivery_next_attempt_at=None,
        )
        if account is not None:
            registry.adapter_for(account).reply_failed(message)
        _announce(message, "message.failed")
        return Delivery.FAILED
    logger.info(
        "reply %s: try %s failed, retrying: %s", message.pk, message.delivery_attempts, reason
    )
    Message.objects.filter(pk=message.pk).update(
        delivery_state=Delivery.QUEUED,
        delivery_error=reason,
        delivery_changed_at=now,
        delivery_next_attempt_at=now + timedelta(seconds=retry_in),
    )
    _announce(message, "message.retrying")
    raise DeliveryDeferred(error, attempt=message.delivery_attempts)


def _pause_channel(account: ChannelAccount, reason: str) -> None:
    """Pause a channel whose mail server refused it, as IMAP polling does on a refused login:
    the merchant's admins see why on the Inbound page and resume it once it is fixed."""
    logger.error("channel account %s paused: %s", account.pk, reason)
    ChannelAccount.objects.filter(pk=account.pk).update(
        paused=True, last_error=reason[:4000], last_error_at=timezone.now()
    )


def _announce(message: Message, event: str) -> None:
    realtime.publish_after_commit(
        message.tenant_id, event, {"ticket": message.ticket.number}, ticket=message.ticket
    )


def resend(*, acting_agent: ActingAgent, message: Message) -> Message:
    """An agent who may work the ticket sends again a reply that failed, or that has been stuck
    sending (its worker died mid-send) for longer than a send can take."""
    require_ticket_in_reach(acting_agent, message.ticket)
    if message.direction != Message.Direction.OUTBOUND or not message.can_be_resent:
        raise BadInput(_("Only a failed reply can be sent again"))
    with transaction.atomic():
        resent = Message.objects.filter(
            pk=message.pk, delivery_state=message.delivery_state
        ).update(
            delivery_state=Delivery.QUEUED,
            delivery_changed_at=timezone.now(),
            delivery_next_attempt_at=None,
        )
        if resent != 1:
            return message
        audit.record(actor=acting_agent, kind=AuditKind.MESSAGE_RESENT, obj=message)
        hand_over(message)
    return message


def send_now(*, acting_agent: ActingAgent, message: Message) -> Message:
    """An agent who may work the ticket sends a retrying reply now rather than at its next
    scheduled try.

    The scheduled try is not revoked: when it comes, the reply has been tried since, so it
    does nothing (``deliver``'s ``after_attempt``), and the reply is sent once.
    """
    require_ticket_in_reach(acting_agent, message.ticket)
    if message.direction != Message.Direction.OUTBOUND or (
        message.delivery_state != Delivery.QUEUED
    ):
        raise BadInput(_("Only a reply waiting to be sent can be sent now"))
    with transaction.atomic():
        hastened = Message.objects.filter(
            pk=message.pk, delivery_state=Delivery.QUEUED, delivery_next_attempt_at__isnull=False
        ).update(delivery_next_attempt_at=None, delivery_changed_at=timezone.now())
        if hastened != 1:
            return message  # a second click, or a try already under way
        audit.record(actor=acting_agent, kind=AuditKind.MESSAGE_SENT_NOW, obj=message)
        hand_over(message)
    return message
