"""Signup and onboarding in templates: whether signup is open (the login page), the banner of
an unverified email (every page), and the tickets list's "finish setting up" link."""

from __future__ import annotations

from typing import Any

from django import template

from helpdesk import onboarding
from helpdesk.errors import PermissionDenied
from helpdesk.permissions import acting_agent_for_request
from helpdesk.signup import email_unverified

register = template.Library()


@register.simple_tag(takes_context=True)
def signup_is_open(context: dict[str, Any]) -> bool:
    from allauth.account.adapter import get_adapter

    return get_adapter().is_open_for_signup(context.get("request"))


# The address the session found verified (or trusted): an address stays so, so later pages skip
# the look-up; another address (changed since) is looked up again.
VERIFIED_SESSION_KEY = "verified_email"


@register.simple_tag(takes_context=True)
def unverified_email(context: dict[str, Any]) -> str:
    """The signed-in person's address while it waits to be verified, else ""."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    session = getattr(request, "session", None)
    if session is not None and session.get(VERIFIED_SESSION_KEY) == user.email:
        return ""
    if email_unverified(user):
        return user.email
    if session is not None:
        session[VERIFIED_SESSION_KEY] = user.email
    return ""


@register.simple_tag(takes_context=True)
def onboarding_reminder(context: dict[str, Any]) -> onboarding.Checklist | None:
    """The checklist to remind an owner or admin of, or None (no query for anyone else)."""
    request = context.get("request")
    if getattr(request, "tenant", None) is None:
        return None
    try:
        acting = acting_agent_for_request(request)
    except PermissionDenied:
        return None
    return onboarding.reminder(acting)
