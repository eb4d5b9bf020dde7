"""Showing customers' mail safely in the agent's page."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django import template
from django.urls import reverse

from tickets import audit
from tickets.models import AuditEvent, Message

register = template.Library()

_CID_SRC = re.compile(r"""src=(["'])cid:([^"']+)\1""", re.IGNORECASE)


@register.simple_tag
def message_html(message: Message) -> str:
    """The message's sanitised HTML with ``cid:`` images pointing at its stored attachments.

    The HTML was sanitised when it arrived; the template puts it in a sandboxed iframe's
    ``srcdoc`` (attribute-escaped), so it can neither run script nor restyle the page.
    """
    by_cid = {a.content_id: a.pk for a in message.attachments.all() if a.content_id}

    def point_at_attachment(match: re.Match[str]) -> str:
        pk = by_cid.get(match.group(2).strip("<>"))
        if pk is None:
            return 'src=""'
        url = reverse("tickets:attachment", args=[pk]) + "?inline=1"
        return f'src="{url}"'

    return _CID_SRC.sub(point_at_attachment, message.body_html)


@register.filter
def audit_label(action: str) -> str:
    """What an audit event's action means, in the agent's language."""
    return audit.kind_label(action)


@register.simple_tag
def audit_lines(events: Iterable[AuditEvent]) -> list[audit.AuditLine]:
    """Audit events in words: ``{% audit_lines events as lines %}`` (one query per object type)."""
    return audit.audit_lines(events)


@register.filter
def status_label(status: str) -> str:
    """A ticket status code as the agent reads it."""
    from tickets.models import Ticket

    try:
        return str(Ticket.Status(status).label)
    except ValueError:
        return status
