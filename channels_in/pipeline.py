"""The one path every inbound message takes, whatever its channel.

store raw -> parse and write attachment files -> claim (with the redelivery check) -> resolve
the customer (with blocks and named orders) -> thread -> route -> write the ticket, message,
attachments and audit rows -> publish (after commit).

Each step costs as few statements as it can (tests/channels_in/test_pipeline_queries.py holds
the budget): a lookup whose inputs are absent is skipped, lookups ride in one query, and rows
that belong together are written in one statement (helpdesk.db.statements).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import registry
from channels_in.base import (
    AdapterError,
    Envelope,
    InboundAttachment,
    InboundEvent,
    InboundMessage,
)
from channels_in.mail.charsets import decode_bytes
from channels_in.models import ChannelAccount, RawInbound
from helpdesk.db.statements import Writes
from helpdesk.errors import BadInput
from helpdesk.permissions import SYSTEM, ActingAgent, Actor, Capability, require
from helpdesk.tenancy import CrossTenantReference, require_tenant
from tickets import audit, services
from tickets.audit import AuditKind
from tickets.models import Attachment, CustomerEvent, Message, Ticket
from tickets.services import AttachmentFiles, clean_json, clean_text
from tickets.threading import normalise_external_id

logger = logging.getLogger(__name__)

State = RawInbound.State


@dataclass
class Outcome:
    state: str
    message: Message | None = None
    ticket: Ticket | None = None
    event: CustomerEvent | None = None
    note: str = ""


# --- 1. store raw ---------------------------------------------------------------------------


def store_raw(
    *, account: ChannelAccount, envelope: Envelope, source: str
) -> tuple[RawInbound, bool]:
    """Keep the delivery exactly as it arrived; a redelivery returns the stored one, unchanged.

    Raises AdapterError(permanent=True) when the payload plainly is not of this channel.
    """
    adapter = registry.adapter_for(account)
    external_id = normalise_external_id(adapter.delivery_id(envelope))
    tenant = require_tenant()
    if account.tenant_id != tenant.pk:
        raise CrossTenantReference(f"channel account {account.pk} is not the active tenant's")
    sender, subject = adapter.summarise(envelope)
    raw = RawInbound(
        tenant_id=tenant.pk,  # written without save(): TenantOwned.save does not run
        account=account,
        external_id=external_id,
        source=source,
        sender=clean_text(sender, 255),
        subject=clean_text(subject, 255),
        payload=envelope.body,
        envelope=clean_json(envelope.meta()),
        payload_sha256=hashlib.sha256(envelope.body).hexdigest(),
    )
    # One statement whether it is new or a redelivery: ON CONFLICT needs no savepoint inside a
    # caller's transaction, and in autocommit the INSERT is a transaction of its own.
    writes = Writes()
    writes.insert("stored", [raw], returning=["id"], ignore_conflicts=True)
    stored = writes.run("SELECT id FROM stored")
    if stored is None:  # a redelivery, or the same delivery arriving twice at once
        return RawInbound.objects.get(account=account, external_id=external_id), False
    raw.pk = stored[0]
    raw._state.adding = False
    raw._state.db = "default"
    return raw, True


def store_undeliverable(
    *, account: ChannelAccount, payload: bytes, source: str, error: str
) -> RawInbound:
    """Keep bytes a channel delivered that are not a message at all, as a failed record an admin
    can see, discard or file by hand (pollers and importers call this; a webhook tells its sender
    with a 400 instead)."""
    external_id = "sha256:" + hashlib.sha256(payload).hexdigest()
    raw, _ = RawInbound.objects.get_or_create(
        account=account,
        external_id=external_id,
        defaults={
            "source": source,
            "payload": payload,
            "payload_sha256": external_id.removeprefix("sha256:"),
            "state": State.FAILED,
            "error": clean_text(error, 4000),
            "queued_at": None,
        },
    )
    return raw


def enqueue(tenant_id: int, raw_id: int) -> None:
    """Hand a stored payload to a worker once it is committed.

    The payload is already safe in the database, so a broker that is down must not fail the
    delivery: the task marks the payload as never queued and the sweep queues it once the
    broker is back (see ``requeue_stale_inbound``).
    """
    from channels_in.tasks import process_raw_inbound

    process_raw_inbound.delay_on_commit(tenant_id, raw_id)


def never_queued(raw_id: int) -> None:
    """Handing a payload to the broker failed: the sweep, or its redelivery, queues it."""
    logger.warning("inbound %s stored but not queued: broker unreachable", raw_id)
    RawInbound.objects.filter(pk=raw_id, state=State.RECEIVED).update(queued_at=None)


def receive(*, account: ChannelAccount, envelope: Envelope, source: str) -> tuple[RawInbound, bool]:
    """Store and enqueue: what every inbound endpoint, poller and importer calls.

    A redelivery of a payload that is stored but was never queued (the broker was down) queues
    it now rather than answering "duplicate" and leaving it for the sweep.
    """
    if not account.is_active:
        raise BadInput(f"The channel {account.name!r} is switched off", account=account.pk)
    raw, created = store_raw(account=account, envelope=envelope, source=source)
    if created or (raw.state == State.RECEIVED and waited_too_long(raw)):
        enqueue(raw.tenant_id, raw.pk)
    return raw, created


def waited_too_long(raw: RawInbound) -> bool:
    """Whether a received payload was never queued, or was queued longer ago than a worker takes."""
    stale = timezone.now() - timedelta(seconds=settings.HELPDESK_INBOUND_STALE_SECONDS)
    return raw.queued_at is None or raw.queued_at < stale


# --- 2. process -----------------------------------------------------------------------------


class NoSender(AdapterError):
    """A message with no address to answer: kept as failed until an admin files it by hand."""

    def __init__(self) -> None:
        super().__init__(
            _("The message has no sender address (no From, Reply-To, Sender or Return-Path)"),
            permanent=True,
        )


def mark_failed(raw_id: int, error: str, *, states: list[str] | None = None) -> None:
    """Record a failure in its own transaction (the processing one has rolled back); with
    ``states``, only while the payload is still in one of them (not processed meanwhile)."""
    rows = RawInbound.objects.filter(pk=raw_id)
    if states is not None:
        rows = rows.filter(state__in=states)
    rows.update(
        state=State.FAILED,
        error=clean_text(error, 4000),
        attempts=F("attempts") + 1,
        state_changed_at=timezone.now(),
    )


def process_raw(
    raw_id: int, *, file_anyway: bool = False, acting_agent: Actor = SYSTEM
) -> RawInbound | None:
    """Turn one stored payload into messages on tickets.

    The payload is read and parsed, and its attachment files written, before the transaction
    opens: slow work holds no transaction, and the files are removed again unless the payload
    is filed (a worker killed in between can leave a file no row names). Then the payload is
    claimed by locking its row for the whole transaction (``SKIP LOCKED``): a worker that dies
    mid-way (kill -9, OOM, a deploy) loses its connection, PostgreSQL rolls the work back and
    releases the row, and the sweep hands it to another worker. Message-level deduplication
    keeps a second attempt from filing anything twice.

    A payload that cannot be processed is kept as failed with its error; a transient error is
    re-raised so the task retries it. Returns None when the payload was not ours to process
    (another worker holds it, or it is done). ``file_anyway`` (an admin's decision) files a
    message the pipeline would ignore or cannot attribute to a sender; ``acting_agent`` is that
    admin (checked by ``file_inbound_anyway``), else the helpdesk itself.
    """
    claimable = [State.RECEIVED, State.FAILED] + ([State.IGNORED] if file_anyway else [])
    files = AttachmentFiles()
    # Every log line written while this payload is processed names it (helpdesk/logging.py).
    bound = structlog.contextvars.bind_contextvars(raw_inbound_id=raw_id)
    try:
        raw = (
            RawInbound.objects.select_related("account", "account__tenant")
            .filter(pk=raw_id, state__in=claimable)
            .first()
        )
        if raw is None:
            return None
        inbound = parse_payload(raw, file_anyway=file_anyway)
        attachments = [
            services.write_attachments(item, files) if isinstance(item, InboundMessage) else []
            for item in inbound
        ]
        with transaction.atomic():
            claimed = claim(raw, claimable)
            if claimed is None:
                files.remove()
                return None
            raw.attempts, filed_id = claimed
            if inbound:
                raw.sender = clean_text(inbound[0].sender_value, 255) or raw.sender
                raw.subject = clean_text(getattr(inbound[0], "subject", ""), 255) or raw.subject
            raw.attempts += 1
            raw.state_changed_at = timezone.now()
            # A payload of one message (most are) is marked processed by the statement that
            # files the message.
            marked: list[bool] = []
            mark = _marking_processed(raw, marked) if len(inbound) == 1 else None
            outcomes = [
                ingest(
                    account=raw.account,
                    inbound=item,
                    attachments=item_attachments,
                    file_anyway=file_anyway,
                    filed_id=filed_id if _same_delivery(raw, item) else _UNKNOWN,
                    also_write=mark,
                )
                if isinstance(item, InboundMessage)
                else record_event(account=raw.account, event=item)
                for item, item_attachments in zip(inbound, attachments, strict=True)
            ]
            first = next((o for o in outcomes if o.message is not None), None) or (
                outcomes[0] if outcomes else Outcome(State.IGNORED, note="nothing to ingest")
            )
            raw.state = first.state
            raw.message = first.message
            raw.ticket = first.ticket
            raw.note = first.note[:255]
            raw.error = ""
            if not (marked and first.state == State.PROCESSED and first.note == ""):
                raw.save(update_fields=_OUTCOME_FIELDS)
            if file_anyway:
                audit.record(
                    actor=acting_agent,
                    kind=AuditKind.INBOUND_FILED_BY_HAND,
                    obj=raw,
                    details={"ticket": first.ticket.number if first.ticket else None},
                )
    except AdapterError as exc:
        files.remove()
        mark_failed(raw_id, exc.message, states=claimable)
        if not exc.permanent:
            raise
        return RawInbound.objects.defer("payload").get(pk=raw_id)
    except (BadInput, ValidationError) as exc:
        # Invalid data in the message itself: trying again cannot help.
        files.remove()
        mark_failed(raw_id, getattr(exc, "message", None) or str(exc), states=claimable)
        return RawInbound.objects.defer("payload").get(pk=raw_id)
    except BaseException as exc:
        files.remove()
        if not isinstance(exc, Exception):
            raise  # a worker shutting down: the payload stays received, the sweep requeues it
        logger.exception("inbound %s failed", raw_id)
        mark_failed(raw_id, f"{type(exc).__name__}: {exc}", states=claimable)
        raise
    finally:
        structlog.contextvars.reset_contextvars(**bound)
    return raw


# What processing a payload writes on its row.
_OUTCOME_FIELDS = [
    "sender",
    "subject",
    "state",
    "message",
    "ticket",
    "note",
    "error",
    "attempts",
    "state_changed_at",
]


def _marking_processed(raw: RawInbound, marked: list[bool]) -> services.AlsoWrite:
    """Writes that mark ``raw`` processed with the message and ticket the filing statement
    writes (``services.record_customer_message``'s ``also_write``); appends to ``marked``."""

    def mark(writes: Writes, message_id: Any, ticket_id: Any) -> None:
        values = {
            "sender": raw.sender,
            "subject": raw.subject,
            "state": State.PROCESSED,
            "message": message_id,
            "ticket": ticket_id,
            "note": "",
            "error": "",
            "attempts": raw.attempts,
            "state_changed_at": raw.state_changed_at,
        }
        writes.update("raw_processed", RawInbound.objects.filter(pk=raw.pk), values)
        marked.append(True)

    return mark


# ``ingest``'s ``filed_id`` when the claim could not tell: look the message up.
_UNKNOWN: Any = object()


def claim(raw: RawInbound, claimable: list[str]) -> tuple[int, int | None] | None:
    """Lock a payload's row until the transaction ends, unless another worker holds it or it
    is no longer claimable (None). Returns its attempts so far and, read in the same query, the
    id of a message already filed under the payload's own delivery id (a redelivery)."""
    # ``exclude(external_id="")`` spells out the condition of the partial unique index on
    # messages' delivery ids: without it PostgreSQL cannot tell the correlated value is not
    # empty and reads the merchant's every message (100 ms at 200,000 messages).
    already_filed = (
        Message.objects.filter(
            channel=OuterRef("account__kind"), external_id=OuterRef("external_id")
        )
        .exclude(external_id="")
        .values("pk")[:1]
    )
    return (
        RawInbound.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk=raw.pk, state__in=claimable)
        .annotate(filed_id=Subquery(already_filed))
        .values_list("attempts", "filed_id")
        .first()
    )


def _same_delivery(raw: RawInbound, item: InboundMessage | InboundEvent) -> bool:
    """Whether a parsed message's id is the payload's delivery id, so ``claim`` looked it up."""
    return (
        isinstance(item, InboundMessage)
        and item.channel == raw.account.kind
        and normalise_external_id(item.external_id) == raw.external_id
        and bool(raw.external_id)
    )


def parse_payload(raw: RawInbound, *, file_anyway: bool) -> list[InboundMessage | InboundEvent]:
    """The messages and events a stored delivery carries; for an admin filing unreadable bytes
    by hand, one message holding the bytes as text and as an attachment."""
    envelope = Envelope.stored(bytes(raw.payload), raw.envelope)
    try:
        return registry.adapter_for(raw.account).parse(envelope)
    except AdapterError as exc:
        if not (file_anyway and exc.permanent):
            raise
    payload = bytes(raw.payload)
    text = decode_bytes(payload[:200_000])
    return [
        InboundMessage(
            channel=raw.account.kind,
            external_id=f"raw:{raw.pk}",
            sender_kind="",
            sender_value="",
            sender_name=raw.sender,
            subject=raw.subject or _("Unreadable message"),
            text=text,
            full_text=text,
            attachments=[
                InboundAttachment(
                    filename=f"inbound-{raw.pk}.txt",
                    content_type="application/octet-stream",
                    content=payload,
                )
            ],
        )
    ]


def retry_inbound(*, acting_agent: ActingAgent, raw: RawInbound) -> RawInbound:
    """An admin sends a failed payload through the pipeline again."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    if raw.state != State.FAILED:
        raise BadInput(_("Only failed messages can be retried"), state=raw.state)
    audit.record(actor=acting_agent, kind=AuditKind.INBOUND_RETRIED, obj=raw)
    enqueue(raw.tenant_id, raw.pk)
    return raw


def discard_inbound(*, acting_agent: ActingAgent, raw: RawInbound, reason: str = "") -> RawInbound:
    """An admin decides a failed or ignored payload needs no ticket. The bytes are kept."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        raw.refresh_from_db(
            from_queryset=RawInbound.objects.select_for_update().defer("payload"),
            fields=["state", "note"],
        )
        if raw.state not in {State.FAILED, State.IGNORED}:
            raise BadInput(_("Only failed or ignored messages can be discarded"), state=raw.state)
        old = raw.state
        raw.state = State.DISCARDED
        raw.note = clean_text(reason, 255) or raw.note
        raw.state_changed_at = timezone.now()
        raw.save(update_fields=["state", "note", "state_changed_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.INBOUND_DISCARDED,
            obj=raw,
            changes={"state": (old, raw.state)},
            details={"reason": raw.note} if raw.note else None,
        )
    return raw


def file_inbound_anyway(*, acting_agent: ActingAgent, raw: RawInbound) -> RawInbound:
    """An admin files a failed or ignored payload as a ticket all the same (audited)."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    if raw.state not in {State.FAILED, State.IGNORED}:
        raise BadInput(_("Only failed or ignored messages can be filed by hand"), state=raw.state)
    held_because = raw.error or raw.note
    result = process_raw(raw.pk, file_anyway=True, acting_agent=acting_agent)
    if result is None:
        raise BadInput(_("Another worker is processing this message right now"), state=raw.state)
    if result.state == State.FAILED:
        raise BadInput(_("It could not be filed: %(error)s") % {"error": result.error})
    if result.ticket is not None and result.state == State.PROCESSED:
        # The agent who opens the ticket sees why it did not arrive on its own.
        services.add_note(
            acting_agent=acting_agent,
            ticket=result.ticket,
            text=_("Filed by hand from the Inbound page. It was held because: %(reason)s")
            % {"reason": held_because},
        )
    return result


# --- 3. file one normalised message or event ------------------------------------------------


def ingest(
    *,
    account: ChannelAccount,
    inbound: InboundMessage,
    files: AttachmentFiles | None = None,
    attachments: list[Attachment] | None = None,
    file_anyway: bool = False,
    filed_id: int | None = _UNKNOWN,
    also_write: services.AlsoWrite | None = None,
) -> Outcome:
    """File one normalised message unless it is a redelivery, automated, or has no sender (an
    admin's ``file_anyway`` files the last two all the same).

    ``attachments``: written already (``services.write_attachments``); else written here
    through ``files``. ``filed_id``: the message already filed under this message's id, when
    the caller has looked (None: none is). ``also_write``: for ``record_customer_message``.
    """
    if filed_id is _UNKNOWN:
        duplicate = services.filed_message(channel=inbound.channel, external_id=inbound.external_id)
    elif filed_id is not None:
        duplicate = Message.objects.select_related("ticket").get(pk=filed_id)
    else:
        duplicate = None
    if duplicate is not None:
        return Outcome(
            State.DUPLICATE,
            ticket=duplicate.ticket,
            note=f"already on ticket #{duplicate.ticket.number}",
        )
    if inbound.automated and not file_anyway:
        return Outcome(State.IGNORED, note=inbound.automated_reason or "automated message")
    if not inbound.sender_value and not file_anyway:
        raise NoSender()
    filed = services.record_customer_message(
        inbound=inbound,
        account_id=account.pk,
        files=files,
        attachments=attachments,
        also_write=also_write,
    )
    return Outcome(State.PROCESSED, message=filed.message, ticket=filed.ticket)


def record_event(*, account: ChannelAccount, event: InboundEvent) -> Outcome:
    """Put a non-message event on the customer's timeline."""
    if not event.sender_value:
        raise NoSender()
    recorded = services.record_customer_event(event=event, account_id=account.pk)
    return Outcome(State.PROCESSED, event=recorded, note=f"event: {recorded.kind}")


def stale_inbound(limit: int = 500) -> list[int]:
    """Received payloads no worker holds that were never queued or waited too long in the queue
    (a lost enqueue, the broker down, a worker killed mid-way); their ``queued_at`` is renewed.

    Call inside a transaction: rows a worker is processing are locked, and skipped.
    """
    require_tenant()
    stale = timezone.now() - timedelta(seconds=settings.HELPDESK_INBOUND_STALE_SECONDS)
    ids = list(
        RawInbound.objects.select_for_update(skip_locked=True)
        .filter(state=State.RECEIVED)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        RawInbound.objects.filter(pk__in=ids).update(queued_at=timezone.now())
    return ids
