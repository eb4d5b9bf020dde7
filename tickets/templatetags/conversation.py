"""Showing customers' mail safely in the agent's page."""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tickets.models import Message

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


AUDIT_LABELS = {
    "ticket.opened": _("opened the ticket"),
    "ticket.status_changed": _("changed the status"),
    "ticket.assigned": _("changed the assignee"),
    "ticket.tagged": _("added tags"),
    "ticket.order_linked": _("linked an order"),
    "message.note_added": _("added an internal note"),
    "message.reply_queued": _("replied to the customer"),
    "message.resent": _("sent a reply again"),
    "identity.added": _("added a contact identity"),
    "inbound.retried": _("retried an inbound message"),
    "channel.resumed": _("resumed a paused channel"),
    "message.sent_now": _("sent a waiting reply now"),
    "inbound.discarded": _("discarded an inbound message"),
    "inbound.filed_by_hand": _("filed an inbound message as a ticket by hand"),
    "support.access_started": _("started platform support access to this merchant"),
    "channel.created": _("connected a mailbox"),
    "channel.updated": _("changed a mailbox's settings"),
    "mailbox.password_changed": _("changed a mailbox password"),
    "channel.paused": _("paused a channel"),
    "channel.secret_rotated": _("rotated a channel's inbound secret"),
    "channel.connection_tested": _("tested a mailbox's connection"),
    "channel.test_mail_sent": _("sent a test mail"),
    "merchant.attachment_limit_changed": _("changed the attachment size limit"),
    "group.created": _("created a group"),
    "group.renamed": _("renamed a group"),
    "group.default_set": _("chose the default group"),
    "group.member_added": _("added someone to a group"),
    "group.member_removed": _("took someone out of a group"),
    "member.role_changed": _("changed a member's role"),
    "member.removed": _("removed a member from the merchant"),
}


@register.filter
def audit_label(action: str) -> str:
    """What an audit event's action means, in the agent's language."""
    return str(AUDIT_LABELS.get(action, action))


@register.filter
def status_label(status: str) -> str:
    """A ticket status code as the agent reads it."""
    from tickets.models import Ticket

    try:
        return str(Ticket.Status(status).label)
    except ValueError:
        return status
