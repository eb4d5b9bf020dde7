"""The ticket page's spam box (its panel comes from the view: tickets.spam.spam_panel)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def identity_kind(kind: str) -> str:
    """A block's kind in the reader's words ("Email", "WeChat openid")."""
    from tickets.models import IdentityKind

    return str(IdentityKind(kind).label) if kind in IdentityKind.values else kind
