"""A ticket's history in words: every event, newest first, in the reader's language.

Replies, notes, customers' messages and delivery failures come from the messages themselves (a
reply is not audited on the ticket, and a failed delivery is not audited at all); everything
else comes from the audit rows on the ticket, on its messages and on its approval requests. The
two are merged by time in a bounded number of queries whatever the ticket's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db.models import CharField, Q
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils.translation import gettext as _

from tickets import people
from tickets.audit import AuditKind
from tickets.history_words import (
    Reader,
    channel_words,
    delivery_failure_words,
    pair,
    words_for,
)
from tickets.models import AuditEvent, Message, Ticket

# How many entries the ticket page shows before "Show all"; and the most "Show all" reads.
SHOWN = 50
MOST = 2000

# Audit rows the messages already tell (the message is the better witness: it has the author).
_TOLD_BY_MESSAGES = {AuditKind.MESSAGE_NOTE_ADDED.value, AuditKind.MESSAGE_REPLY_QUEUED.value}
# Entries that follow their message's own entry when both carry the same instant.
_AFTERMATH = {"message.failed", "message.retrying"}


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the history: when, who, what happened, and any further words (a reason)."""

    at: datetime
    actor: str
    words: str
    detail: str = ""
    kind: str = ""


@dataclass(frozen=True)
class TicketHistory:
    entries: list[HistoryEntry]
    more: bool  # older entries exist than those shown


def audit_entry(event: AuditEvent, reader: Reader) -> HistoryEntry:
    words, detail = words_for(event, reader)
    return HistoryEntry(event.created_at, reader.actor(event), words, detail, event.action)


def message_entries(row: Mapping[str, Any], reader: Reader) -> list[HistoryEntry]:
    """What a message adds to the history: it was written, and (a reply) it failed."""
    Direction, Delivery = Message.Direction, Message.Delivery
    author = reader.person(row["author_user_id"], row["author_user__username"] or "")
    if row["author_user_id"] is None:
        author = _("System")
    channel = channel_words(row["channel"])
    direction = row["direction"]
    if direction == Direction.INBOUND:
        who = reader.customer_name(row["author_customer__name"] or "")
        return [
            HistoryEntry(
                row["created_at"],
                who,
                _("Customer wrote on %(channel)s") % {"channel": channel},
                kind="message.inbound",
            )
        ]
    if direction == Direction.NOTE:
        return [HistoryEntry(row["created_at"], author, _("Internal note added"), kind="note")]
    entries = [
        HistoryEntry(
            row["created_at"],
            author,
            _("Replied on %(channel)s") % {"channel": channel},
            kind="message.outbound",
        )
    ]
    failed_at = max(row["delivery_changed_at"] or row["created_at"], row["created_at"])
    if row["delivery_state"] == Delivery.FAILED:
        entries.append(
            HistoryEntry(
                failed_at,
                _("System"),
                _("Delivery failed"),
                delivery_failure_words(row["delivery_error"]),
                kind="message.failed",
            )
        )
    elif row["delivery_state"] == Delivery.QUEUED and row["delivery_next_attempt_at"]:
        entries.append(
            HistoryEntry(
                failed_at,
                _("System"),
                _("Delivery failed; it will be tried again"),
                delivery_failure_words(row["delivery_error"]),
                kind="message.retrying",
            )
        )
    return entries


_MESSAGE_FIELDS = (
    "pk",
    "direction",
    "channel",
    "author_user_id",
    "author_user__username",
    "author_customer__name",
    "delivery_state",
    "delivery_error",
    "delivery_changed_at",
    "delivery_next_attempt_at",
    "created_at",
)


def _as_text(queryset: Any) -> Any:
    return queryset.annotate(id_text=Cast("pk", output_field=CharField())).values("id_text")


def _audit_rows(ticket: Ticket, count: int) -> list[AuditEvent]:
    """The ticket's own audit rows and those on its messages and approval requests."""
    approvals = apps.get_model("escalation", "ApprovalRequest").objects.filter(ticket=ticket)
    on_this = (
        Q(object_type="ticket", object_id=str(ticket.pk))
        | Q(object_type="message", object_id__in=_as_text(Message.objects.filter(ticket=ticket)))
        | Q(object_type="approvalrequest", object_id__in=_as_text(approvals))
    )
    rows = AuditEvent.objects.filter(on_this).exclude(action__in=_TOLD_BY_MESSAGES)
    return list(rows.order_by("-created_at", "-pk")[:count])


def _message_rows(ticket: Ticket, count: int) -> list[dict[str, Any]]:
    # A reply's failure comes after it was written: order by whichever happened last.
    last = Greatest("created_at", Coalesce("delivery_changed_at", "created_at"))
    rows = Message.objects.filter(ticket=ticket).annotate(last_event_at=last)
    return list(rows.order_by("-last_event_at", "-pk").values(*_MESSAGE_FIELDS)[:count])


def _people_in(events: list[AuditEvent], messages: list[dict[str, Any]]) -> set[int]:
    ids = {event.actor_id for event in events if event.actor_id is not None}
    ids |= {row["author_user_id"] for row in messages if row["author_user_id"] is not None}
    for event in events:
        assignees = pair(event, "assignee") or ()
        ids |= {value for value in assignees if isinstance(value, int)}
    return ids


def _reason_labels(events: list[AuditEvent]) -> dict[str, str]:
    codes = {
        code
        for event in events
        if event.action == AuditKind.TICKET_REASON_CHANGED.value
        for code in pair(event, "reason_code") or ()
        if code
    }
    if not codes:
        return {}
    from tickets.models.reasons import ReasonCode

    return dict(ReasonCode.objects.filter(code__in=codes).values_list("code", "label"))


def ticket_history(
    *, ticket: Ticket, limit: int | None = SHOWN, names: Mapping[int, str] | None = None
) -> TicketHistory:
    """Every event on ``ticket`` in words, newest first: the latest ``limit`` (at most ``MOST``),
    and whether there are older ones. ``names`` (display names by user id) spares a query."""
    count = min(limit or MOST, MOST)
    events = _audit_rows(ticket, count + 1)
    messages = _message_rows(ticket, count + 1)
    if names is None:
        wanted = _people_in(events, messages)
        names = people.display_names(wanted) if wanted else {}
    reader = Reader(ticket=ticket, names=names, reasons=_reason_labels(events))
    entries = [audit_entry(event, reader) for event in events]
    for row in messages:
        entries.extend(message_entries(row, reader))
    # A failure recorded in the same instant as its reply still comes after it.
    entries.sort(key=lambda entry: (entry.at, entry.kind in _AFTERMATH), reverse=True)
    return TicketHistory(entries=entries[:count], more=len(entries) > count)
