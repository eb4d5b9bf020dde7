"""A merchant's phone lines: owners and admins connect and edit them, and a call asks who is on
duty to ring.

On duty means online (``tickets.presence``) in the line's group (the merchant's default group
when none is chosen), while that group's business hours are open, with a phone number in the
agent's profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from channels_in import crypto
from channels_in.api_channels import checked_name
from channels_in.models import ChannelAccount, PhoneLine
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.business_hours import calendar_for
from tickets.models import AgentPresence, Channel, Group, GroupMember, IdentityKind
from tickets.services import normalise_identity

MAX_GREETING_CHARS = 500
MIN_RING_SECONDS, MAX_RING_SECONDS = 5, 60


@dataclass(frozen=True)
class Duty:
    """Whether the line's group is open now, and the numbers of its agents on duty."""

    open: bool
    numbers: list[str]


def line_group(line: PhoneLine) -> Group | None:
    return line.group or Group.objects.filter(is_default=True).order_by("pk").first()


def on_duty(line: PhoneLine) -> Duty:
    """Who a call rings now: the phones of the line's group's online agents, while the group
    is open; nobody when it is closed."""
    group = line_group(line)
    if not calendar_for(group).is_open(timezone.now()):
        return Duty(open=False, numbers=[])
    online = AgentPresence.objects.filter(status=AgentPresence.Status.ONLINE).values("user_id")
    if group is not None:
        online = online.filter(
            user_id__in=GroupMember.objects.filter(group=group).values("user_id")
        )
    numbers = (
        require_tenant()
        .memberships.filter(user_id__in=online)
        .exclude(phone="")
        .order_by("user_id")
        .values_list("phone", flat=True)
    )
    return Duty(open=True, numbers=list(dict.fromkeys(numbers)))


def greeting(line: PhoneLine, locale: str) -> str:
    """What a caller hears first: the line's greeting in ``locale``, else a plain one."""
    text = str((line.greetings or {}).get(locale) or "").strip()
    if text:
        return text
    with translation.override(locale):
        return _("Thank you for calling %(merchant)s.") % {"merchant": require_tenant().name}


def auth_token(line: PhoneLine) -> str:
    return crypto.decrypt_secret(line.auth_token_encrypted)


# --- settings ----------------------------------------------------------------------------------


def checked_number(number: str) -> str:
    """The number in E.164, read with the merchant's region as the default; refused on the
    form's "number" field."""
    try:
        return normalise_identity(
            kind=IdentityKind.PHONE, value=number, region=require_tenant().phone_region
        )
    except BadInput:
        raise BadInput(
            _("%(value)s is not a phone number") % {"value": number}, field="number"
        ) from None


def checked_greetings(greetings: dict[str, str]) -> dict[str, str]:
    languages = {code for code, _name in settings.LANGUAGES}
    kept: dict[str, str] = {}
    for code, text in greetings.items():
        text = " ".join((text or "").split())
        if code not in languages:
            raise BadInput(_("Choose one of the languages offered"), field="greetings")
        if len(text) > MAX_GREETING_CHARS:
            raise BadInput(
                _("A greeting has at most %(count)s characters") % {"count": MAX_GREETING_CHARS},
                field=f"greeting_{code}",
            )
        if text:
            kept[code] = text
    return kept


def checked_ring_seconds(seconds: int) -> int:
    if not MIN_RING_SECONDS <= seconds <= MAX_RING_SECONDS:
        raise BadInput(
            _("Ring between %(low)s and %(high)s seconds")
            % {"low": MIN_RING_SECONDS, "high": MAX_RING_SECONDS},
            field="ring_seconds",
        )
    return seconds


def create_phone_line(
    *,
    acting_agent: ActingAgent,
    name: str,
    number: str,
    auth_token: str = "",
    greetings: dict[str, str] | None = None,
    group: Group | None = None,
    ring_seconds: int = 20,
) -> PhoneLine:
    """Connect a phone line: its number, the Twilio auth token its webhooks are signed with
    (kept encrypted), the greeting per language and the group whose agents it rings."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    name = checked_name(name)
    number = checked_number(number)
    kept = checked_greetings(greetings or {})
    ring_seconds = checked_ring_seconds(ring_seconds)
    with transaction.atomic():
        account = ChannelAccount.objects.create(kind=Channel.PHONE, name=name)
        line = PhoneLine.objects.create(
            account=account,
            number=number,
            auth_token_encrypted=crypto.encrypt_secret(auth_token.strip()),
            greetings=kept,
            group=group,
            ring_seconds=ring_seconds,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CREATED,
            obj=account,
            changes={"name": (None, name), "number": (None, number)},
            details={"channel": Channel.PHONE, "greetings": sorted(kept)},
        )
    return line


def update_phone_line(
    *,
    acting_agent: ActingAgent,
    line: PhoneLine,
    name: str,
    number: str,
    greetings: dict[str, str],
    group: Group | None,
    ring_seconds: int,
    auth_token: str = "",
) -> PhoneLine:
    """Change a phone line's settings; an empty auth token keeps the saved one. Audited old and
    new (the token only as "changed")."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    wanted: dict[str, Any] = {
        "name": checked_name(name),
        "number": checked_number(number),
        "greetings": checked_greetings(greetings),
        "group_id": group.pk if group else None,
        "ring_seconds": checked_ring_seconds(ring_seconds),
    }
    with transaction.atomic():
        line.refresh_from_db(from_queryset=PhoneLine.objects.select_for_update())
        account = line.account
        current = {
            "name": account.name,
            "number": line.number,
            "greetings": line.greetings,
            "group_id": line.group_id,
            "ring_seconds": line.ring_seconds,
        }
        changes = {
            key: (current[key], value) for key, value in wanted.items() if current[key] != value
        }
        if auth_token.strip():
            line.auth_token_encrypted = crypto.encrypt_secret(auth_token.strip())
            changes["auth_token"] = ("", "changed")
        if not changes:
            return line
        account.name = wanted["name"]
        account.save(update_fields=["name"])
        line.number, line.greetings = wanted["number"], wanted["greetings"]
        line.group_id, line.ring_seconds = wanted["group_id"], wanted["ring_seconds"]
        line.save()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_UPDATED,
            obj=account,
            changes=changes,
            details={"channel": Channel.PHONE},
        )
    return line
