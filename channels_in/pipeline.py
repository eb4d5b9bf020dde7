"""The one path every inbound message takes, whatever its channel.

store raw -> dedupe -> resolve the customer -> thread -> detect order references ->
create or update the ticket and message -> route -> publish (after commit).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import registry
from channels_in.base import AdapterError, InboundMessage
from channels_in.models import ChannelAccount, RawInbound
from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.tenancy import require_tenant
from tickets import services
from tickets.assignment import route_new_ticket
from tickets.models import Attachment, Customer, Message, Order, Ticket

logger = logging.getLogger(__name__)

State = RawInbound.State
CLAIMABLE = [State.RECEIVED, State.FAILED]
_ORDER_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{3,40}")
_TICKET_TOKEN = re.compile(r"\[#(\d{1,9})\]")


@dataclass
class Outcome:
    state: str
    message: Message | None = None
    ticket: Ticket | None = None
    note: str = ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise_external_id(value: str) -> str:
    """A provider's id as we store it: trimmed, and hashed when too long or holding control
    characters (PostgreSQL refuses NUL; a hash still recognises the redelivery)."""
    value = (value or "").strip().strip("<>").strip()
    if len(value) > 200 or _CONTROL.search(value):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def clean_json(value: object) -> object:
    """JSON as PostgreSQL's jsonb can hold it: no NUL characters in any string."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean_json(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


def clean_text(value: str, limit: int | None = None) -> str:
    """Text as the database can hold it: no NUL characters, at most ``limit`` characters."""
    value = (value or "").replace("\x00", "")
    return value[:limit] if limit else value


# --- 1. store raw ---------------------------------------------------------------------------


def store_raw(*, account: ChannelAccount, payload: bytes, source: str) -> tuple[RawInbound, bool]:
    """Keep the payload exactly as delivered; a redelivery returns the stored one, unchanged.

    Raises AdapterError(permanent=True) when the payload plainly is not of this channel.
    """
    external_id = normalise_external_id(registry.adapter_for(account).delivery_id(payload))
    existing = RawInbound.objects.filter(account=account, external_id=external_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            raw = RawInbound.objects.create(
                account=account,
                external_id=external_id,
                source=source,
                payload=payload,
                payload_sha256=hashlib.sha256(payload).hexdigest(),
            )
    except IntegrityError:  # the same delivery arrived twice at once
        return RawInbound.objects.get(account=account, external_id=external_id), False
    return raw, True


def store_undeliverable(
    *, account: ChannelAccount, payload: bytes, source: str, error: str
) -> RawInbound:
    """Keep bytes a channel delivered that are not a message at all, as a failed record an admin
    can see (pollers and importers call this; a webhook tells its sender with a 400 instead)."""
    external_id = "sha256:" + hashlib.sha256(payload).hexdigest()
    raw, _ = RawInbound.objects.get_or_create(
        account=account,
        external_id=external_id,
        defaults={
            "source": source,
            "payload": payload,
            "payload_sha256": external_id.removeprefix("sha256:"),
            "state": State.FAILED,
            "error": error[:4000],
        },
    )
    return raw


def enqueue(raw: RawInbound) -> None:
    """Hand a stored payload to a worker once it is committed."""
    from channels_in.tasks import process_raw_inbound

    transaction.on_commit(lambda: process_raw_inbound.delay(raw.tenant_id, raw.pk))


def receive(*, account: ChannelAccount, payload: bytes, source: str) -> tuple[RawInbound, bool]:
    """Store and enqueue: what every inbound endpoint, poller and importer calls."""
    if not account.is_active:
        raise BadInput(f"The channel {account.name!r} is switched off", account=account.pk)
    raw, created = store_raw(account=account, payload=payload, source=source)
    if created:
        enqueue(raw)
    return raw, created


# --- 2. process -----------------------------------------------------------------------------


def claim(raw_id: int) -> bool:
    """Take a stored payload for processing; False when another worker has it or it is done."""
    claimed = RawInbound.objects.filter(pk=raw_id, state__in=CLAIMABLE).update(
        state=State.PROCESSING, attempts=F("attempts") + 1, state_changed_at=timezone.now()
    )
    return claimed == 1


def mark_failed(raw: RawInbound, error: str) -> None:
    raw.state = State.FAILED
    raw.error = error[:4000]
    raw.state_changed_at = timezone.now()
    RawInbound.objects.filter(pk=raw.pk).update(
        state=raw.state, error=raw.error, state_changed_at=raw.state_changed_at
    )


def process_raw(raw_id: int) -> RawInbound | None:
    """Turn one stored payload into messages on tickets.

    A payload that cannot be processed is kept as failed with its error; a transient error is
    re-raised so the task retries it. Returns None when the payload was not ours to process.
    """
    if not claim(raw_id):
        return None
    raw = RawInbound.objects.select_related("account", "account__tenant").get(pk=raw_id)
    try:
        inbound = registry.adapter_for(raw.account).parse(bytes(raw.payload))
        with transaction.atomic():
            outcomes = [ingest(account=raw.account, inbound=item) for item in inbound]
            first = next((o for o in outcomes if o.message is not None), None) or (
                outcomes[0] if outcomes else Outcome(State.IGNORED, note="nothing to ingest")
            )
            raw.state = first.state
            raw.message = first.message
            raw.ticket = first.ticket
            raw.note = first.note[:255]
            raw.error = ""
            raw.state_changed_at = timezone.now()
            raw.save(
                update_fields=["state", "message", "ticket", "note", "error", "state_changed_at"]
            )
    except AdapterError as exc:
        mark_failed(raw, exc.message)
        if not exc.permanent:
            raise
    except Exception as exc:
        logger.exception("inbound %s failed", raw.pk)
        mark_failed(raw, f"{type(exc).__name__}: {exc}")
        raise
    return raw


def retry_inbound(*, actor: object, raw: RawInbound) -> RawInbound:
    """An admin sends a failed payload through the pipeline again."""
    if raw.state != State.FAILED:
        raise BadInput(_("Only failed messages can be retried"), state=raw.state)
    services.record_audit(actor=actor, action="inbound.retried", obj=raw)
    enqueue(raw)
    return raw


# --- 3. ingest one normalised message --------------------------------------------------------


def ingest(*, account: ChannelAccount, inbound: InboundMessage) -> Outcome:
    """Create or update the ticket and message for one normalised inbound message."""
    external_id = normalise_external_id(inbound.external_id)
    duplicate = (
        Message.objects.filter(channel=inbound.channel, external_id=external_id)
        .select_related("ticket")
        .first()
        if external_id
        else None
    )
    if duplicate is not None:
        return Outcome(
            State.DUPLICATE,
            ticket=duplicate.ticket,
            note=f"already on ticket #{duplicate.ticket.number}",
        )
    if inbound.automated:
        return Outcome(State.IGNORED, note=inbound.automated_reason or "automated message")

    sender_name = clean_text(inbound.sender_name, 200)
    if inbound.sender_value:
        customer = services.resolve_customer(
            kind=inbound.sender_kind, value=clean_text(inbound.sender_value), name=sender_name
        )
    else:
        # No sender at all: keep the message visible rather than lose it; nobody to reply to.
        customer = Customer.objects.create(name=sender_name or "Unknown sender")
    ticket = find_thread(customer=customer, inbound=inbound)
    order = find_order_reference(customer=customer, inbound=inbound)
    if ticket is None:
        ticket = services.open_ticket(
            actor=None,
            customer=customer,
            subject=clean_text(inbound.subject),
            channel=inbound.channel,
            order=order,
        )
        route_new_ticket(ticket=ticket)
    else:
        if order is not None and ticket.order_id is None:
            services.link_order(actor=None, ticket=ticket, order=order)
        if ticket.status in {Ticket.Status.PENDING, Ticket.Status.SOLVED, Ticket.Status.ON_HOLD}:
            # The customer answered: the ticket needs an agent again.
            services.change_ticket_status(actor=None, ticket=ticket, status=Ticket.Status.OPEN)

    message = Message.objects.create(
        ticket=ticket,
        direction=Message.Direction.INBOUND,
        channel=inbound.channel,
        author_customer=customer,
        subject=clean_text(inbound.subject, 255),
        body_text=clean_text(inbound.text),
        full_text=clean_text(inbound.full_text or inbound.text),
        body_html=clean_text(inbound.html),
        external_id=external_id,
        sent_at=inbound.sent_at,
        metadata=clean_json(
            {
                **inbound.metadata,
                "account_id": account.pk,
                "from": inbound.sender_value,
                "recipients": inbound.recipients,
                "reply_to_ids": [normalise_external_id(i) for i in inbound.reply_to_ids[:20]],
                "conversation_id": inbound.conversation_id,
            }
        ),
    )
    for item in inbound.attachments:
        attachment = Attachment(
            message=message,
            filename=clean_text(item.filename, 255) or "attachment",
            content_type=clean_text(item.content_type, 127),
            size=len(item.content),
            content_id=clean_text(item.content_id, 255),
            inline=item.inline,
        )
        attachment.file.save(attachment.filename, ContentFile(item.content), save=False)
        attachment.save()
    Ticket.objects.filter(pk=ticket.pk).update(
        last_customer_message_at=inbound.sent_at or timezone.now(), updated_at=timezone.now()
    )
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.message",
        {"ticket": ticket.number, "direction": "inbound", "subject": ticket.subject},
    )
    return Outcome(State.PROCESSED, message=message, ticket=ticket)


def find_thread(*, customer: Customer, inbound: InboundMessage) -> Ticket | None:
    """The ticket a message continues, or None for a new conversation.

    In order: the message it replies to (reply headers), the channel's conversation id, a
    ``[#123]`` token of this customer's ticket in the subject, then this customer's open ticket
    on the same channel within the threading window. A closed ticket is never continued. A
    reply joins a ticket only when its sender is the ticket's customer or was sent or copied
    the message it answers: knowing a Message-ID is not enough to read someone's ticket.
    """
    reply_ids = [normalise_external_id(i) for i in inbound.reply_to_ids if i][:50]
    candidates: list[Ticket | None] = []
    if reply_ids:
        earlier = (
            Message.objects.filter(channel=inbound.channel, external_id__in=reply_ids)
            .select_related("ticket")
            .order_by("-created_at")
            .first()
        )
        if earlier is not None and was_party_to(
            customer=customer, inbound=inbound, message=earlier
        ):
            candidates.append(earlier.ticket)
    if inbound.conversation_id:
        earlier = (
            Message.objects.filter(
                channel=inbound.channel,
                metadata__conversation_id=inbound.conversation_id,
                ticket__customer=customer,
            )
            .select_related("ticket")
            .order_by("-created_at")
            .first()
        )
        candidates.append(earlier.ticket if earlier else None)
    token = _TICKET_TOKEN.search(inbound.subject or "")
    if token:
        candidates.append(
            Ticket.objects.filter(number=int(token.group(1)), customer=customer).first()
        )
    for ticket in candidates:
        if ticket is not None and ticket.status != Ticket.Status.CLOSED:
            return ticket
    if reply_ids:
        # A reply to something we do not know starts its own ticket rather than joining another.
        return None
    window = timezone.now() - timedelta(hours=settings.HELPDESK_THREAD_WINDOW_HOURS)
    return (
        Ticket.objects.filter(customer=customer, channel=inbound.channel, updated_at__gte=window)
        .exclude(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED])
        .order_by("-updated_at")
        .first()
    )


def was_party_to(*, customer: Customer, inbound: InboundMessage, message: Message) -> bool:
    """Whether the sender of ``inbound`` took part in ``message``'s conversation."""
    if message.ticket.customer_id == customer.pk:
        return True
    sender = (inbound.sender_value or "").lower()
    recipients = {
        str(address).lower()
        for address in [*message.metadata.get("recipients", []), message.metadata.get("to", "")]
        if address
    }
    return bool(sender) and sender in recipients


def find_order_reference(*, customer: Customer, inbound: InboundMessage) -> Order | None:
    """The customer's own order named in the subject or text (e.g. "订单号 SO20261105")."""
    tokens = {
        token
        for token in _ORDER_TOKEN.findall(f"{inbound.subject}\n{inbound.text[:5000]}")
        if sum(ch.isdigit() for ch in token) >= 4
    }
    if not tokens:
        return None
    tokens |= {token.upper() for token in tokens}
    return (
        Order.objects.filter(customer=customer, number__in=list(tokens)[:200])
        .order_by("-placed_at")
        .first()
    )


def stale_inbound() -> list[RawInbound]:
    """Payloads stuck before a worker finished them (lost enqueue, killed worker)."""
    require_tenant()
    now = timezone.now()
    waiting = RawInbound.objects.filter(
        state=State.RECEIVED, received_at__lt=now - timedelta(minutes=5)
    )
    stuck = RawInbound.objects.filter(
        state=State.PROCESSING, state_changed_at__lt=now - timedelta(minutes=30)
    )
    return list(waiting[:500]) + list(stuck[:500])
