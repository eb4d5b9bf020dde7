"""``{% composer_options ticket as composer %}``: what the reply form offers on a ticket (files,
CC and BCC where its channel carries them, CC filled in as "reply all" would)."""

from __future__ import annotations

from django import template

from tickets.composer import ComposerOptions
from tickets.composer import composer_options as options_for
from tickets.models import Ticket

register = template.Library()


@register.simple_tag(takes_context=True)
def composer_options(context: template.Context, ticket: Ticket) -> ComposerOptions:
    """The page's ``conversation`` (the ticket's messages, read once) spares a query."""
    return options_for(ticket, loaded=context.get("conversation"))
