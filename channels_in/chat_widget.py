"""What the chat widget on a store's page is allowed and told: the channel behind a public
key, the origin check, the signed visitor token, whether anyone can answer now, the widget's
words in the page's language, and the per-visitor rate limit.

The widget runs on the merchant's store, another origin than ours: a cookie of ours would be
third-party there (and blocked), so the visitor is known by a token the widget keeps in the
store page's localStorage, signed here with a salt of the channel's own.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from channels_in.chat_channels import normalise_origin
from channels_in.models import WebChat
from helpdesk import tenancy, throttles
from helpdesk.models import Tenant
from tickets import business_hours
from tickets.models import AgentPresence, Group, GroupMember

# WebSocket close codes the widget understands (4000-4999 are the application's).
CLOSE_UNKNOWN_KEY = 4404
CLOSE_ORIGIN_REFUSED = 4403
CLOSE_PAUSED = 4409

LANGUAGES = ("zh-hans", "en")


class ChatRefused(Exception):
    """A widget request refused before anything is stored, with an HTTP status, a WebSocket
    close code and a reason in words."""

    def __init__(self, status: int, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Widget:
    """The channel behind a public key, with its merchant."""

    tenant: Tenant
    webchat: WebChat

    @property
    def account(self) -> Any:
        return self.webchat.account


def widget_for_key(public_key: str) -> Widget:
    """The active chat channel of ``public_key`` (or of the key it replaced, in its grace);
    raises ``ChatRefused`` (404) when there is none. Call with no tenant active: the key names
    the merchant, whose tenant the caller then activates."""
    slug, dot, _token = (public_key or "").partition(".")
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first() if dot else None
    if tenant is not None:
        with tenancy.activate(tenant):
            webchat = (
                WebChat.objects.select_related("account", "account__tenant")
                .filter(
                    Q(public_key=public_key)
                    | Q(
                        previous_public_key=public_key,
                        previous_key_valid_until__gt=timezone.now(),
                    )
                )
                .filter(account__is_active=True)
                .first()
            )
        if webchat is not None and webchat.account.paused:
            raise ChatRefused(
                403, CLOSE_PAUSED, "paused", "The merchant has paused this chat for now"
            )
        if webchat is not None:
            return Widget(tenant=tenant, webchat=webchat)
    raise ChatRefused(
        404,
        CLOSE_UNKNOWN_KEY,
        "unknown_key",
        "No live chat has this key (it may have been rotated)",
    )


def check_origin(webchat: WebChat, origin: str) -> str:
    """The page's origin when the channel's allow-list has it; ``ChatRefused`` (403) saying
    why otherwise."""
    normalised = normalise_origin(origin)
    if not normalised:
        raise ChatRefused(
            403,
            CLOSE_ORIGIN_REFUSED,
            "origin_missing",
            "The chat answers only pages of the merchant's store (no Origin was sent)",
        )
    if normalised not in (webchat.allowed_origins or []):
        raise ChatRefused(
            403,
            CLOSE_ORIGIN_REFUSED,
            "origin_refused",
            f"The origin {normalised} is not allowed for this chat: add it to the channel's "
            "allowed origins in Settings → Channels",
        )
    return normalised


# --- the visitor's token ------------------------------------------------------------------


def _signer(webchat: WebChat) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=f"helpdesk.chat.visitor:{webchat.account_id}")


def new_visitor_id() -> str:
    """A new visitor's id (their token: ``token_for``)."""
    return uuid.uuid4().hex


def token_for(webchat: WebChat, visitor_id: str) -> str:
    return _signer(webchat).sign(visitor_id)


def visitor_of_token(webchat: WebChat, token: str) -> str | None:
    """The visitor id a token of this channel carries; None for a forged token or another
    channel's."""
    try:
        visitor_id = _signer(webchat).unsign(token or "")
    except signing.BadSignature:
        return None
    return visitor_id if len(visitor_id) == 32 and visitor_id.isalnum() else None


# --- who can answer ----------------------------------------------------------------------


def answering_groups(webchat: WebChat) -> list[Group]:
    """The groups a chat of this channel can go to: its persona groups, else every group that
    takes chat (none named: the merchant's default)."""
    if webchat.persona_group_ids:
        return list(Group.objects.filter(pk__in=webchat.persona_group_ids))
    # Filtered here, not in SQL: JSON containment differs between PostgreSQL and SQLite, and
    # a merchant has a handful of groups.
    groups = [
        group
        for group in Group.objects.filter(persona="")
        if not group.channels or "chat" in group.channels
    ]
    return groups or list(Group.objects.filter(is_default=True))


# Every widget asks when it connects: the answer is kept this long per channel.
AVAILABILITY_SECONDS = 5


def someone_can_answer(webchat: WebChat, *, fresh: bool = False) -> bool:
    """Whether an agent of the chat's groups is online while one of those groups is open;
    unless ``fresh``, as found within the last ``AVAILABILITY_SECONDS`` (every socket asks)."""
    key = f"chat-available:{webchat.account_id}"
    known = None
    if not fresh:
        with contextlib.suppress(RedisError, OSError):
            known = cache.get(key)
    if known is not None:
        return bool(known)
    available = _someone_can_answer(webchat)
    with contextlib.suppress(RedisError, OSError):
        cache.set(key, int(available), AVAILABILITY_SECONDS)
    return available


def _someone_can_answer(webchat: WebChat) -> bool:
    now = timezone.now()
    groups = answering_groups(webchat)
    open_ids = [
        group.pk
        for group in groups
        if group.always_open or business_hours.calendar_for(group).is_open(now)
    ]
    if not open_ids:
        return False
    members = GroupMember.objects.filter(group_id__in=open_ids).values("user_id")
    return AgentPresence.objects.filter(
        status=AgentPresence.Status.ONLINE, user_id__in=members
    ).exists()


def page_language(lang: str) -> str:
    """The widget's language from the store page's ``<html lang>``: Chinese for any zh,
    else English."""
    return "zh-hans" if (lang or "").lower().startswith("zh") else "en"


# --- the rate limit ----------------------------------------------------------------------


def take_message_quota(account_id: int, visitor_id: str) -> throttles.Decision:
    """Count one message of the visitor against ``HELPDESK_CHAT_VISITOR_RATE``."""
    return throttles.take(
        scope="chat",
        subject=f"{account_id}:{visitor_id}",
        rate=settings.HELPDESK_CHAT_VISITOR_RATE,
    )


# --- the widget's words ------------------------------------------------------------------


def widget_words(language: str) -> dict[str, str]:
    """Every string the widget shows, in ``language`` (zh-hans or en)."""
    with translation.override(language):
        return {
            "title": _("Chat with us"),
            "open": _("Chat"),
            "close": _("Close"),
            "placeholder": _("Write a message…"),
            "send": _("Send"),
            "attach": _("Attach a file"),
            "supervisor": _("Talk to a supervisor"),
            "supervisor_text": _("I would like to talk to a supervisor, please."),
            "typing": _("{name} is typing…"),
            "seen": _("Seen"),
            "sent": _("Sent"),
            "sending": _("Sending…"),
            "failed": _("Not sent"),
            "retry": _("Retry"),
            "rate_limited": _(
                "You are sending messages too fast. Wait a few seconds and try again."
            ),
            "too_large": _("The file is too large (at most {limit})."),
            "bad_type": _("This kind of file cannot be sent. Send an image, a PDF or a text file."),
            "upload_failed": _("The file could not be sent."),
            "offline_title": _("Leave us a message"),
            "offline_text": _(
                "Nobody can chat right now. Leave a message and we will answer, by email if you "
                "give your address."
            ),
            "leave": _("Leave a message"),
            "left": _("Thank you. Your message is with us, and we will answer soon."),
            "prechat_title": _("Before we start"),
            "start": _("Start the chat"),
            "name": _("Your name"),
            "email": _("Email"),
            "phone": _("Phone"),
            "order": _("Order number"),
            "persona": _("How would you like to be served?"),
            "email_or_phone": _("Give an email address or a phone number."),
            "required": _("Please fill in this field."),
            "message": _("Your message"),
            "agent": _("Support"),
            "you": _("You"),
            "reconnecting": _("Reconnecting…"),
            "refused": _("The chat is not available on this page."),
        }
