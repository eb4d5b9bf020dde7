"""``{% composer_options ticket as composer %}``: what the reply form offers on a ticket (files,
CC and BCC where its channel carries them, CC filled in as "reply all" would)."""

from __future__ import annotations

from django import template

from tickets.composer import ComposerOptions
from tickets.composer import composer_options as options_for
from tickets.models import Ticket

register = template.Library()


@register.simple_tag
def composer_options(ticket: Ticket) -> ComposerOptions:
    return options_for(ticket)
