"""A ticket's history in words: every event, newest first, in the reader's language.

Replies, notes, customers' messages and delivery failures come from the messages themselves (a
reply is not audited on the ticket, and a failed delivery is not audited at all); everything
else comes from the audit rows on the ticket, on its messages and on its approval requests. The
two are merged by time in a bounded number of queries whatever the ticket's length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection
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


# What the history reads of a message, when the page has not read them already.
_MESSAGE_FIELDS = (
    "direction",
    "channel",
    "author_user__username",
    "author_customer__name",
    "delivery_state",
    "delivery_error",
    "delivery_changed_at",
    "delivery_next_attempt_at",
    "created_at",
)


def _audit_rows(
    ticket: Ticket,
    count: int,
    loaded: Sequence[Message],
    approval_ids: Sequence[int] | None = None,
) -> list[AuditEvent]:
    """The ticket's own audit rows and those on its messages and approval requests: one
    statement, each part a range of audit_object_idx (an OR of them would read every audit row
    of the merchant: 600 ms at a million tickets). ``loaded``: the ticket's messages; the ids of
    its approval requests come from ``approval_ids`` when the page has them, else a query."""
    if approval_ids is None:
        approvals = apps.get_model("escalation", "ApprovalRequest").objects.filter(ticket=ticket)
        approval_ids = list(approvals.values_list("pk", flat=True))
    rows = AuditEvent.objects.exclude(action__in=_TOLD_BY_MESSAGES)
    parts = [rows.filter(object_type="ticket", object_id=str(ticket.pk))]
    for object_type, ids in (
        ("message", [m.pk for m in loaded]),
        ("approvalrequest", approval_ids),
    ):
        if ids:
            parts.append(rows.filter(object_type=object_type, object_id__in=[str(i) for i in ids]))
    newest = [part.order_by("-created_at", "-id")[:count] for part in parts]
    if len(newest) == 1:
        return list(newest[0])
    if not connection.features.supports_slicing_ordering_in_compound:  # SQLite (make run)
        rows = [event for part in newest for event in part]
        return sorted(rows, key=lambda event: (event.created_at, event.pk), reverse=True)[:count]
    return list(newest[0].union(*newest[1:], all=True).order_by("-created_at", "-id")[:count])


def _row_of(message: Message) -> dict[str, Any]:
    """A loaded message (author and customer selected) as ``_message_rows`` gives it."""
    return {
        "pk": message.pk,
        "direction": message.direction,
        "channel": message.channel,
        "author_user_id": message.author_user_id,
        "author_user__username": message.author_user.username if message.author_user else None,
        "author_customer__name": message.author_customer.name if message.author_customer else None,
        "delivery_state": message.delivery_state,
        "delivery_error": message.delivery_error,
        "delivery_changed_at": message.delivery_changed_at,
        "delivery_next_attempt_at": message.delivery_next_attempt_at,
        "created_at": message.created_at,
    }


def _last_event_at(row: dict[str, Any]) -> Any:
    return max(row["created_at"], row["delivery_changed_at"] or row["created_at"])


def _message_rows(loaded: Sequence[Message], count: int) -> list[dict[str, Any]]:
    """The latest ``count`` of the ticket's messages as history rows, a reply's failure
    coming after it was written (ordered by whichever happened last)."""
    rows = [_row_of(message) for message in loaded]
    rows.sort(key=lambda row: (_last_event_at(row), row["pk"]), reverse=True)
    return rows[:count]


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
    *,
    ticket: Ticket,
    limit: int | None = SHOWN,
    names: Mapping[int, str] | None = None,
    loaded: Sequence[Message] | None = None,
    approval_ids: Sequence[int] | None = None,
) -> TicketHistory:
    """Every event on ``ticket`` in words, newest first: the latest ``limit`` (at most ``MOST``),
    and whether there are older ones. ``names`` (display names by user id) and ``loaded``
    (all of the ticket's messages, authors selected, as the page has them) and ``approval_ids``
    (the ticket's approval requests) spare a query each."""
    count = min(limit or MOST, MOST)
    if loaded is None:
        loaded = list(
            Message.objects.filter(ticket=ticket)
            .select_related("author_user", "author_customer")
            .only(*_MESSAGE_FIELDS)
        )
    events = _audit_rows(ticket, count + 1, loaded, approval_ids)
    messages = _message_rows(loaded, count + 1)
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
