"""The one path every inbound message takes, whatever its channel.

store raw -> dedupe -> resolve the customer -> thread -> detect order references ->
create or update the ticket and message -> route -> publish (after commit).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import registry
from channels_in.base import AdapterError, InboundMessage
from channels_in.linking import find_order_reference, find_thread, normalise_external_id
from channels_in.models import ChannelAccount, RawInbound
from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.tenancy import require_tenant
from tickets import services
from tickets.assignment import route_new_ticket
from tickets.models import Attachment, Customer, Message, Ticket

logger = logging.getLogger(__name__)

State = RawInbound.State
CLAIMABLE = [State.RECEIVED, State.FAILED]


@dataclass
class Outcome:
    state: str
    message: Message | None = None
    ticket: Ticket | None = None
    note: str = ""


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
    raw.error = clean_text(error, 4000)
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
