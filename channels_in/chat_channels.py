"""A merchant's owners and admins connect and edit live chat channels: the widget's name, the
store origins that may embed it, the pre-chat form, the persona groups a visitor may choose,
and the public key in the ``<script>`` tag (rotated with a grace period).

Every action takes the acting agent, requires ``MANAGE_CHANNELS`` before it touches anything,
and writes its audit row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in.api_channels import checked_name
from channels_in.models import ChannelAccount, WebChat, new_chat_key
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel, Group

PRECHAT_FIELDS = ("name", "email", "phone", "order")
MAX_ORIGINS = 20


@dataclass
class ChatSettings:
    """What an admin sets on a chat channel."""

    name: str
    allowed_origins: list[str] = field(default_factory=list)
    prechat_fields: list[str] = field(default_factory=list)
    prechat_required: list[str] = field(default_factory=list)
    persona_group_ids: list[int] = field(default_factory=list)


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped; "" when it is not one."""
    origin = (origin or "").strip().rstrip("/")
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def checked_origins(origins: list[str]) -> list[str]:
    """The allow-list as saved: each an origin such as https://shop.example.com, no repeats."""
    cleaned: list[str] = []
    for raw in origins:
        raw = raw.strip()
        if not raw:
            continue
        origin = normalise_origin(raw)
        if not origin:
            raise BadInput(
                _(
                    "%(origin)s is not a store origin: write the scheme and host only, such "
                    "as https://shop.example.com"
                )
                % {"origin": raw[:200]},
                field="allowed_origins",
            )
        if origin not in cleaned:
            cleaned.append(origin)
    if len(cleaned) > MAX_ORIGINS:
        raise BadInput(
            _("At most %(count)s store origins") % {"count": MAX_ORIGINS}, field="allowed_origins"
        )
    return cleaned


def checked_prechat(fields: list[str], required: list[str]) -> tuple[list[str], list[str]]:
    unknown = [name for name in [*fields, *required] if name not in PRECHAT_FIELDS]
    if unknown:
        raise BadInput(
            _("Unknown pre-chat field %(field)s") % {"field": unknown[0]}, field="prechat_fields"
        )
    asked = [name for name in PRECHAT_FIELDS if name in fields or name in required]
    return asked, [name for name in PRECHAT_FIELDS if name in required]


def checked_persona_groups(group_ids: list[int]) -> list[int]:
    """The merchant's persona groups among ``group_ids``; another merchant's or a group without
    a persona is refused."""
    ids = sorted({int(pk) for pk in group_ids})
    found = set(Group.objects.filter(pk__in=ids).exclude(persona="").values_list("pk", flat=True))
    if len(found) != len(ids):
        raise BadInput(
            _("Choose groups that have a persona (Settings → Groups)"), field="persona_groups"
        )
    return ids


def new_public_key() -> str:
    return f"{require_tenant().slug}.{new_chat_key()}"


def create_chat_channel(*, acting_agent: ActingAgent, chat_settings: ChatSettings) -> WebChat:
    """Connect a live chat channel with a fresh public key for the store's ``<script>`` tag."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    name = checked_name(chat_settings.name)
    origins = checked_origins(chat_settings.allowed_origins)
    asked, required = checked_prechat(chat_settings.prechat_fields, chat_settings.prechat_required)
    personas = checked_persona_groups(chat_settings.persona_group_ids)
    with transaction.atomic():
        account = ChannelAccount.objects.create(kind=Channel.CHAT, name=name)
        webchat = WebChat.objects.create(
            account=account,
            public_key=new_public_key(),
            allowed_origins=origins,
            prechat_fields=asked,
            prechat_required=required,
            persona_group_ids=personas,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CREATED,
            obj=account,
            changes={"name": (None, name), "allowed_origins": (None, origins)},
            details={"channel": Channel.CHAT},
        )
    return webchat


def update_chat_channel(
    *, acting_agent: ActingAgent, webchat: WebChat, chat_settings: ChatSettings
) -> WebChat:
    """Change a chat channel's name, origins, pre-chat form or persona groups; audited."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    name = checked_name(chat_settings.name)
    wanted: dict[str, Any] = {"allowed_origins": checked_origins(chat_settings.allowed_origins)}
    wanted["prechat_fields"], wanted["prechat_required"] = checked_prechat(
        chat_settings.prechat_fields, chat_settings.prechat_required
    )
    wanted["persona_group_ids"] = checked_persona_groups(chat_settings.persona_group_ids)
    with transaction.atomic():
        webchat.refresh_from_db(from_queryset=WebChat.objects.select_for_update())
        account = webchat.account
        changes: dict[str, tuple[Any, Any]] = {}
        if account.name != name:
            changes["name"] = (account.name, name)
            account.name = name
            account.save(update_fields=["name"])
        changed = [key for key, value in wanted.items() if getattr(webchat, key) != value]
        for key in changed:
            changes[key] = (getattr(webchat, key), wanted[key])
            setattr(webchat, key, wanted[key])
        if changed:
            webchat.save(update_fields=changed)
        if changes:
            audit.record(
                actor=acting_agent, kind=AuditKind.CHANNEL_UPDATED, obj=account, changes=changes
            )
    return webchat


def rotate_public_key(*, acting_agent: ActingAgent, webchat: WebChat) -> WebChat:
    """Give the widget a new public key; the old one keeps working for
    ``HELPDESK_SECRET_GRACE_HOURS`` while the store's pages are updated."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        webchat.refresh_from_db(from_queryset=WebChat.objects.select_for_update())
        valid_until = timezone.now() + timedelta(hours=settings.HELPDESK_SECRET_GRACE_HOURS)
        webchat.previous_public_key = webchat.public_key
        webchat.previous_key_valid_until = valid_until
        webchat.public_key = new_public_key()
        webchat.save(
            update_fields=["public_key", "previous_public_key", "previous_key_valid_until"]
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_SECRET_ROTATED,
            obj=webchat.account,
            details={"key": "public key", "previous_valid_until": valid_until},
        )
    return webchat
