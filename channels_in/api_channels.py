"""A merchant's owners and admins connect and edit JSON API channels (docs/channels.md).

Every action takes the acting agent, requires ``MANAGE_CHANNELS`` before it touches anything,
and writes its audit row in the same transaction. The secret that signs both directions is the
channel account's inbound secret, rotated like an email channel's
(``channels_in.mailboxes.rotate_inbound_secret``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from channels_in.models import ApiChannel, ChannelAccount
from helpdesk import http
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel

MAX_NAME_CHARS = 120
MAX_CALLBACK_URL_CHARS = 500


def checked_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise BadInput(_("A channel needs a name"), field="name")
    if len(name) > MAX_NAME_CHARS:
        raise BadInput(
            _("A channel name has at most %(limit)s characters") % {"limit": MAX_NAME_CHARS},
            field="name",
        )
    return name


def checked_callback_url(url: str) -> str:
    """The callback URL as saved, or ``BadInput``/``EgressRefused`` (``field="callback_url"``)
    saying why the platform will not post there: not http or https, a user name in it, or a
    host that is not a public address on the scheme's usual port. Empty: no replies."""
    return http.checked_merchant_url(
        url,
        field="callback_url",
        max_chars=MAX_CALLBACK_URL_CHARS,
        too_long=_("The callback URL has at most %(limit)s characters")
        % {"limit": MAX_CALLBACK_URL_CHARS},
    )


def create_api_channel(
    *, acting_agent: ActingAgent, name: str, callback_url: str = ""
) -> ApiChannel:
    """Connect a JSON API channel: its own signing secret, and the URL agents' replies are
    posted to (none: the channel only takes messages in)."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    name = checked_name(name)
    callback_url = checked_callback_url(callback_url)
    with transaction.atomic():
        account = ChannelAccount.objects.create(kind=Channel.API, name=name)
        api = ApiChannel.objects.create(account=account, callback_url=callback_url)
        changes: dict[str, tuple[Any, Any]] = {"name": (None, name)}
        if callback_url:
            changes["callback_url"] = (None, callback_url)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CREATED,
            obj=account,
            changes=changes,
            details={"channel": Channel.API},
        )
    return api


def update_api_channel(
    *, acting_agent: ActingAgent, api_channel: ApiChannel, name: str, callback_url: str
) -> ApiChannel:
    """Rename an API channel or change its callback URL; audited old and new."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    name = checked_name(name)
    callback_url = checked_callback_url(callback_url)
    with transaction.atomic():
        api_channel.refresh_from_db(from_queryset=ApiChannel.objects.select_for_update())
        account = api_channel.account
        changes: dict[str, tuple[Any, Any]] = {}
        if account.name != name:
            changes["name"] = (account.name, name)
            account.name = name
            account.save(update_fields=["name"])
        if api_channel.callback_url != callback_url:
            changes["callback_url"] = (api_channel.callback_url, callback_url)
            api_channel.callback_url = callback_url
            api_channel.save(update_fields=["callback_url"])
        if changes:
            audit.record(
                actor=acting_agent, kind=AuditKind.CHANNEL_UPDATED, obj=account, changes=changes
            )
    return api_channel
