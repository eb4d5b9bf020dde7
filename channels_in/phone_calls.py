"""Calls agents make and take outside the phone line, and call-backs they promise.

A call or voicemail has no text channel back, so an agent answers a phone ticket by calling the
customer and logging the call on the ticket (``log_call``: direction, number, duration, outcome,
notes), or schedules a call-back (``schedule_call_back``) that shows in their "Call-backs due"
queue (``tickets.inbox``) from the chosen time until a logged call completes it.

Every action checks that the ticket is in the agent's reach and writes its audit row in the
same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, QuerySet, prefetch_related_objects
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in.models import CallBack, CallLog
from channels_in.phone_lines import checked_number
from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require_ticket_in_reach
from helpdesk.tenancy import require_tenant
from tickets import audit, search, service_levels
from tickets.audit import AuditKind
from tickets.models import Channel, CustomerIdentity, IdentityKind, Message, Ticket

MAX_CALL_SECONDS = 24 * 60 * 60
MAX_NOTES_CHARS = 4000
MAX_NOTE_CHARS = 500
# A call-back may be set for a moment just past (the agent typed "now"), not for yesterday.
PAST_GRACE = timedelta(minutes=5)


def customer_number(ticket: Ticket, identities: Iterable[CustomerIdentity] | None = None) -> str:
    """The customer's phone number the helpdesk knows (their first), or "". ``identities``:
    the customer's, read already (the ticket page's card)."""
    if identities is not None:
        phones = sorted((i for i in identities if i.kind == IdentityKind.PHONE), key=lambda i: i.pk)
        return phones[0].value if phones else ""
    return (
        ticket.customer.identities.filter(kind=IdentityKind.PHONE)
        .order_by("pk")
        .values_list("value", flat=True)
        .first()
        or ""
    )


def readable_number(e164: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )


def call_summary(log: CallLog) -> str:
    """The words the call leaves on the ticket's conversation."""
    minutes, seconds = divmod(log.duration_seconds, 60)
    words = (
        _("Called %(number)s: %(outcome)s, %(duration)s.")
        if log.direction == CallLog.Direction.OUTBOUND
        else _("Call from %(number)s: %(outcome)s, %(duration)s.")
    ) % {
        "number": readable_number(log.number),
        "outcome": log.get_outcome_display().lower(),
        "duration": f"{minutes}:{seconds:02d}",
    }
    return f"{words}\n\n{log.notes}" if log.notes else words


def log_call(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    direction: str,
    number: str,
    outcome: str,
    duration_seconds: int = 0,
    notes: str = "",
    called_at: datetime | None = None,
    call_back: CallBack | None = None,
) -> CallLog:
    """Log a call on a ticket in reach: it shows in the conversation (a call to the customer
    as the agent's answer, a call from them as a note), counts as the first response when the
    agent talked to the customer, and completes ``call_back`` (or the agent's open call-back on
    the ticket, the soonest due first)."""
    require_ticket_in_reach(acting_agent, ticket)
    if direction not in CallLog.Direction.values:
        raise BadInput(_("Choose whether you called or were called"), field="direction")
    if outcome not in CallLog.Outcome.values:
        raise BadInput(_("Choose how the call went"), field="outcome")
    if not 0 <= duration_seconds <= MAX_CALL_SECONDS:
        raise BadInput(_("A call lasts between 0 seconds and a day"), field="duration")
    notes = (notes or "").replace("\r\n", "\n").strip()
    if len(notes) > MAX_NOTES_CHARS:
        raise BadInput(
            _("Notes have at most %(count)s characters") % {"count": MAX_NOTES_CHARS},
            field="notes",
        )
    number = checked_number(number)
    now = timezone.now()
    called_at = min(called_at or now, now)
    outbound = direction == CallLog.Direction.OUTBOUND
    with transaction.atomic():
        log = CallLog(
            ticket=ticket,
            agent=acting_agent.user,
            direction=direction,
            number=number,
            duration_seconds=duration_seconds,
            outcome=outcome,
            notes=notes,
            called_at=called_at,
        )
        text = call_summary(log)
        log.message = Message.objects.create(
            ticket=ticket,
            direction=Message.Direction.OUTBOUND if outbound else Message.Direction.NOTE,
            channel=Channel.PHONE,
            author_user=acting_agent.user,
            subject=_("Call"),
            body_text=text,
            full_text=text,
            delivery_state=Message.Delivery.SENT if outbound else Message.Delivery.NOT_SENT,
            sent_at=called_at,
            metadata={"call_log": True, "to" if outbound else "from": number},
        )
        log.save()
        Ticket.objects.filter(pk=ticket.pk).update(
            updated_at=now, search_text=search.appended(text)
        )
        if outbound and outcome == CallLog.Outcome.ANSWERED:
            service_levels.note_first_response(ticket=ticket, at=called_at)
        done = _complete_call_back(acting_agent, ticket, call_back, log)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CALL_LOGGED,
            obj=ticket,
            details={
                "direction": direction,
                "number": number,
                "outcome": outcome,
                "duration_seconds": duration_seconds,
                "call_back": done.pk if done else None,
            },
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.message",
            {"ticket": ticket.number, "direction": log.message.direction},
            ticket=ticket,
        )
    return log


def _complete_call_back(
    acting_agent: ActingAgent, ticket: Ticket, call_back: CallBack | None, log: CallLog
) -> CallBack | None:
    if log.direction != CallLog.Direction.OUTBOUND:
        return None
    pending = CallBack.objects.select_for_update().filter(ticket=ticket, done_at__isnull=True)
    if call_back is not None:
        pending = pending.filter(pk=call_back.pk)
    else:
        pending = pending.filter(agent=acting_agent.user).order_by("due_at")
    found = pending.first()
    if found is None:
        if call_back is not None:
            raise BadInput(_("That call-back is done already"), field="call_back")
        return None
    CallBack.objects.filter(pk=found.pk).update(done_at=log.called_at, call_log=log)
    return found


def schedule_call_back(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    due_at: datetime,
    number: str = "",
    note: str = "",
    agent: Any = None,
) -> CallBack:
    """Promise a call to the customer of a ticket in reach at ``due_at``: it appears in the
    calling agent's "Call-backs due" queue from then. Giving it to a colleague takes the
    right to reassign."""
    require_ticket_in_reach(acting_agent, ticket)
    agent = agent or acting_agent.user
    if agent.pk != acting_agent.user.pk:
        if not acting_agent.can(Capability.REASSIGN):
            raise BadInput(_("Only supervisors give call-backs to colleagues"), field="agent")
        if not require_tenant().memberships.filter(user_id=agent.pk).exists():
            raise BadInput(_("Choose an agent of this merchant"), field="agent")
    if due_at is None or due_at < timezone.now() - PAST_GRACE:
        raise BadInput(_("Choose a time from now on"), field="due_at")
    number = (number or "").strip() or customer_number(ticket)
    if not number:
        raise BadInput(_("Give the number to call back"), field="number")
    number = checked_number(number)
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE_CHARS:
        raise BadInput(
            _("A note has at most %(count)s characters") % {"count": MAX_NOTE_CHARS},
            field="note",
        )
    with transaction.atomic():
        call_back = CallBack.objects.create(
            ticket=ticket,
            agent=agent,
            number=number,
            due_at=due_at,
            note=note,
            created_by=acting_agent.user,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CALL_BACK_SCHEDULED,
            obj=ticket,
            details={
                "due_at": due_at.isoformat(),
                "number": number,
                "agent": agent.get_username(),
                "call_back": call_back.pk,
            },
        )
    return call_back


def cancel_call_back(*, acting_agent: ActingAgent, call_back: CallBack) -> CallBack:
    """Drop a call-back that is no longer needed (its agent, or a colleague who may
    reassign); audited."""
    require_ticket_in_reach(acting_agent, call_back.ticket)
    if call_back.agent_id != acting_agent.user.pk and not acting_agent.can(Capability.REASSIGN):
        raise BadInput(_("Only the agent who calls back, or a supervisor, can cancel it"))
    with transaction.atomic():
        cancelled = CallBack.objects.filter(pk=call_back.pk, done_at__isnull=True).delete()[0]
        if not cancelled:
            raise BadInput(_("That call-back is done already"), field="call_back")
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CALL_BACK_CANCELLED,
            obj=call_back.ticket,
            details={"due_at": call_back.due_at.isoformat(), "number": call_back.number},
        )
    return call_back


# --- the queue -----------------------------------------------------------------------------------


def due_call_backs(user: Any) -> QuerySet[CallBack]:
    """``user``'s call-backs whose time has come and that no logged call completed yet; the
    database's clock decides, so the queue shows each one from its time on."""
    return CallBack.objects.filter(agent=user, done_at__isnull=True, due_at__lte=Now())


def with_call_back_due(tickets: QuerySet[Ticket], user: Any) -> QuerySet[Ticket]:
    """Of ``tickets``, those with a call-back due for ``user``."""
    return tickets.filter(Exists(due_call_backs(user).filter(ticket=OuterRef("pk"))))


def prefetch_calls(ticket: Ticket) -> None:
    """Read a ticket's call-backs and calls logged, each with its agent, for the ticket page's
    Calls panel: one query each, however many there are."""
    prefetch_related_objects(
        [ticket],
        Prefetch("call_backs", queryset=CallBack.objects.select_related("agent")),
        Prefetch("call_logs", queryset=CallLog.objects.select_related("agent")),
    )
