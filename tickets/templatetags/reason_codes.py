"""The ticket page's reason select: ``{% load reason_codes %}{% reason_choices ticket as x %}``."""

from __future__ import annotations

from django import template

from tickets import reasons
from tickets.models import Ticket

register = template.Library()


@register.simple_tag
def reason_choices(ticket: Ticket) -> list[tuple[str, str]]:
    """(code, label) of the active merchant's codes offered for ``ticket``, its own included."""
    return reasons.reason_choices(ticket)
