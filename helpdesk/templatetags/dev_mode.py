"""Template tags for development-only pages."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.simple_tag
def dev_outbox_url() -> str:
    """The development outbox's address while DEBUG is on, else "" (so no link is shown)."""
    return reverse("dev_outbox") if settings.DEBUG else ""
