"""Audit rows of a ticket in words: one sentence per kind, in the reader's language, with people
by their display names. A kind without a sentence here reads as its audit-log label and what
changed, so a kind added later never shows as nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _

from helpdesk.money import format_money
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Channel, Ticket


def channel_words(value: Any) -> str:
    try:
        return str(Channel(value).label)
    except ValueError:
        return str(value or "")


def _choice(choices: Any, value: Any) -> str:
    if value in (None, ""):
        return "—"
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def delivery_failure_words(error: str) -> str:
    """A stored delivery error behind a translated lead-in: the server's own words stay as they
    came (they are stored once, in whatever language the server spoke)."""
    if not error:
        return _("The reply could not be delivered.")
    return _("The mail server or channel refused it: %(error)s") % {"error": error}


@dataclass
class Reader:
    """What turning rows into words needs: names of people and of reason codes."""

    ticket: Ticket
    names: Mapping[int, str]
    reasons: Mapping[str, str]

    def person(self, user_id: Any, fallback: str = "") -> str:
        if isinstance(user_id, int) and user_id in self.names:
            return self.names[user_id]
        return fallback or (str(user_id) if user_id not in (None, "") else "—")

    def actor(self, event: AuditEvent) -> str:
        if event.actor_id is not None:
            return self.person(event.actor_id, event.actor_label)
        label = event.actor_label or ""
        if label in ("", "system"):
            return _("System")
        if label.startswith("customer"):
            return self.customer_name()
        return label

    def customer_name(self, name: str = "") -> str:
        return name or self.ticket.customer.name or _("Customer")

    def reason(self, code: Any) -> str:
        if not code:
            return "—"
        return self.reasons.get(code, str(code))


def pair(event: AuditEvent, field: str) -> tuple[Any, Any] | None:
    value = (event.changes or {}).get(field)
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return None


def _details(event: AuditEvent) -> dict[str, Any]:
    details = (event.changes or {}).get(audit.DETAILS_KEY)
    return details if isinstance(details, dict) else {}


def _money(amount: Any, currency: Any) -> str:
    try:
        return format_money(Decimal(str(amount)), str(currency))
    except (InvalidOperation, ValueError, TypeError):
        return f"{amount} {currency}".strip()


def _remedy_kind(value: Any) -> str:
    from escalation.models import RemedyKind

    return _choice(RemedyKind, value)


def _opened(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    channel = _details(event).get("channel") or reader.ticket.channel
    return _("Ticket opened on %(channel)s") % {"channel": channel_words(channel)}, ""


def _status(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, new = pair(event, "status") or (None, None)
    return _("Status changed from %(old)s to %(new)s") % {
        "old": _choice(Ticket.Status, old),
        "new": _choice(Ticket.Status, new),
    }, ""


def _priority(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, new = pair(event, "priority") or (None, None)
    return _("Priority changed from %(old)s to %(new)s") % {
        "old": _choice(Ticket.Priority, old),
        "new": _choice(Ticket.Priority, new),
    }, ""


def _reason(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, new = pair(event, "reason_code") or (None, None)
    return _("Reason changed from %(old)s to %(new)s") % {
        "old": reader.reason(old),
        "new": reader.reason(new),
    }, ""


def _assigned(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, new = pair(event, "assignee") or (None, None)
    if new is None:
        if old is None:
            return _("Ticket unassigned"), ""
        return _("Unassigned (was %(name)s)") % {"name": reader.person(old)}, ""
    if event.actor_id is not None and event.actor_id == new and old is None:
        return _("Took the ticket"), ""
    if event.action == AuditKind.TICKET_AUTO_ASSIGNED.value:
        return _("Assigned to %(name)s by routing") % {"name": reader.person(new)}, ""
    return _("Assigned to %(name)s") % {"name": reader.person(new)}, ""


def _routed(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    _old, group = pair(event, "group") or (None, None)
    rule = _details(event).get("rule") or ""
    words = _("Moved to group %(group)s") % {"group": group or "—"}
    assignee = pair(event, "assignee")
    if assignee is not None and assignee[1] is None and assignee[0] is not None:
        words += "; " + _("unassigned from %(name)s") % {"name": reader.person(assignee[0])}
    detail = ""
    if rule and rule != "moved by hand":
        detail = _("Rule: %(rule)s") % {"rule": audit.value_words("rule", rule)}
    return words, detail


def _returned(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, _new = pair(event, "assignee") or (None, None)
    if old is not None:
        return _("Returned to the queue from %(name)s") % {"name": reader.person(old)}, ""
    return _("Returned to the queue"), ""


def _tagged(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    added = _details(event).get("added") or (event.changes or {}).get("added") or []
    return _("Tagged %(tags)s") % {"tags": ", ".join(str(tag) for tag in added)}, ""


def _untagged(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    removed = _details(event).get("removed") or []
    return _("Tag %(tags)s removed") % {"tags": ", ".join(str(tag) for tag in removed)}, ""


def _order_linked(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    number = _details(event).get("order_number") or "—"
    return _("Order %(number)s linked") % {"number": number}, ""


def _escalated(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    from escalation.models import Trigger

    details = _details(event)
    return _("Escalated: %(trigger)s") % {"trigger": _choice(Trigger, details.get("trigger"))}, str(
        details.get("reason") or ""
    )


def _escalation_resolved(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    return _("Escalation resolved"), str(_details(event).get("resolution") or "")


def _remedy_granted(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    details = _details(event)
    return _("Remedy granted: %(kind)s, %(amount)s") % {
        "kind": _remedy_kind(details.get("kind")),
        "amount": _money(details.get("amount"), details.get("currency")),
    }, ""


def _approval_requested(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    details = _details(event)
    return _("Approval requested for %(kind)s, %(amount)s") % {
        "kind": _remedy_kind(details.get("kind")),
        "amount": _money(details.get("amount"), details.get("currency")),
    }, ""


def _approval_decided(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    details = _details(event)
    amount = details.get("granted_amount") or details.get("amount")
    return "%s: %s, %s" % (  # noqa: UP031 (three already-translated parts)
        audit.kind_label(event.action),
        _remedy_kind(details.get("kind")),
        _money(amount, details.get("currency")),
    ), ""


def _order_unlinked(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    old, _new = pair(event, "order") or (None, None)
    number = _details(event).get("order_number") or old
    if number:
        return _("Order %(number)s unlinked") % {"number": number}, ""
    return _("Order unlinked"), ""


def _merged(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    """A merge told on either ticket: "Merged into #12" or "Merged #15 into this ticket"."""
    into = pair(event, "merged_into")
    if into is not None and into[1]:
        return _("Merged into ticket #%(number)s") % {"number": into[1]}, ""
    source = _details(event).get("merged_from")
    if source:
        return _("Ticket #%(number)s merged into this one") % {"number": source}, ""
    return _generic(event, reader)


def _marked_spam(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    return _("Marked as spam"), ""


def _not_spam(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    return _("Marked as not spam"), ""


def _message_resent(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    return _("Reply sent again"), ""


def _sent_now(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    return _("Waiting reply sent now"), ""


def _generic(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    """Any other kind (one added later, or one no longer in the enum): its label and changes."""
    changes, details = audit.changes_shown(event, reader.names)
    parts = [f"{c.field}: {c.old} → {c.new}" if c.field else f"{c.old} → {c.new}" for c in changes]
    parts += [f"{d.field}: {d.value}" for d in details if d.value != "—"]
    return audit.kind_label(event.action), "; ".join(parts)


_WORDS: dict[str, Callable[[AuditEvent, Reader], tuple[str, str]]] = {
    AuditKind.TICKET_OPENED.value: _opened,
    AuditKind.TICKET_STATUS_CHANGED.value: _status,
    AuditKind.TICKET_PRIORITY_CHANGED.value: _priority,
    AuditKind.TICKET_REASON_CHANGED.value: _reason,
    AuditKind.TICKET_ASSIGNED.value: _assigned,
    AuditKind.TICKET_AUTO_ASSIGNED.value: _assigned,
    AuditKind.TICKET_ROUTED.value: _routed,
    AuditKind.TICKET_RETURNED_TO_QUEUE.value: _returned,
    AuditKind.TICKET_TAGGED.value: _tagged,
    AuditKind.TICKET_UNTAGGED.value: _untagged,
    AuditKind.TICKET_ORDER_LINKED.value: _order_linked,
    "ticket.order_unlinked": _order_unlinked,
    "ticket.merged": _merged,
    "ticket.marked_spam": _marked_spam,
    "ticket.not_spam": _not_spam,
    AuditKind.ESCALATION_RAISED.value: _escalated,
    AuditKind.ESCALATION_RESOLVED.value: _escalation_resolved,
    AuditKind.REMEDY_GRANTED.value: _remedy_granted,
    AuditKind.APPROVAL_REQUESTED.value: _approval_requested,
    AuditKind.APPROVAL_APPROVED.value: _approval_decided,
    AuditKind.APPROVAL_COUNTERED.value: _approval_decided,
    AuditKind.APPROVAL_DENIED.value: _approval_decided,
    AuditKind.MESSAGE_RESENT.value: _message_resent,
    AuditKind.MESSAGE_SENT_NOW.value: _sent_now,
}


def words_for(event: AuditEvent, reader: Reader) -> tuple[str, str]:
    """What ``event`` says, and any further words (a reason, the changes of an unknown kind)."""
    return _WORDS.get(event.action, _generic)(event, reader)
