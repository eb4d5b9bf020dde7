"""The ticket page's spam box: ``{% load spam %}{% spam_panel ticket as spam %}``."""

from __future__ import annotations

from django import template

from tickets import spam
from tickets.models import Ticket

register = template.Library()


@register.simple_tag
def spam_panel(ticket: Ticket) -> spam.SpamPanel:
    """Whether and why the ticket is set aside, and its customer's contacts with their blocks."""
    return spam.spam_panel(ticket)


@register.filter
def identity_kind(kind: str) -> str:
    """A block's kind in the reader's words ("Email", "WeChat openid")."""
    from tickets.models import IdentityKind

    return str(IdentityKind(kind).label) if kind in IdentityKind.values else kind
