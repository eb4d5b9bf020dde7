"""A merchant's owners and admins connect and edit WeChat Official Account channels, and test
their API credentials.

Every action takes the acting agent, requires ``MANAGE_CHANNELS`` before it touches anything,
and writes its audit row in the same transaction. The EncodingAESKey and the AppSecret are
stored Fernet-encrypted and never shown again; an empty field on the form keeps the saved one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from channels_in.api_channels import checked_name
from channels_in.base import AdapterError
from channels_in.crypto import encrypt_secret
from channels_in.models import ChannelAccount, WeChatAccount
from channels_in.wechat_api import WeChatApi
from channels_in.wechat_crypto import aes_key
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_APP_ID = re.compile(r"wx[0-9a-fA-F]{16}")
_APP_SECRET = re.compile(r"[0-9A-Za-z]{16,64}")


@dataclass(frozen=True)
class WeChatSettings:
    """What the admin types; an empty ``encoding_aes_key`` or ``app_secret`` keeps the saved one
    (``clear_aes_key`` removes the key: plain mode)."""

    name: str
    app_id: str
    token: str
    encoding_aes_key: str = ""
    app_secret: str = ""
    clear_aes_key: bool = False


def checked(values: WeChatSettings) -> WeChatSettings:
    """The settings as saved, or BadInput naming the field at fault, in WeChat's own terms."""
    name = checked_name(values.name)
    app_id = values.app_id.strip()
    if not _APP_ID.fullmatch(app_id):
        raise BadInput(
            _("An AppID is wx followed by 16 letters and digits, as the WeChat platform shows it"),
            field="app_id",
        )
    token = values.token.strip()
    if not _TOKEN.fullmatch(token):
        raise BadInput(_("The token is 3 to 32 letters and digits"), field="token")
    key = values.encoding_aes_key.strip()
    if key:
        try:
            aes_key(key)
        except ValueError:
            raise BadInput(
                _("The EncodingAESKey is 43 letters and digits"), field="encoding_aes_key"
            ) from None
    secret = values.app_secret.strip()
    if secret and not _APP_SECRET.fullmatch(secret):
        raise BadInput(_("The AppSecret is 32 letters and digits"), field="app_secret")
    return WeChatSettings(name, app_id, token, key, secret, values.clear_aes_key)


def create_wechat_channel(*, acting_agent: ActingAgent, values: WeChatSettings) -> WeChatAccount:
    """Connect an Official Account: its token, EncodingAESKey, AppID and AppSecret."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    values = checked(values)
    with transaction.atomic():
        account = ChannelAccount.objects.create(kind=Channel.WECHAT, name=values.name)
        wechat = WeChatAccount.objects.create(
            account=account,
            app_id=values.app_id,
            token=values.token,
            encoding_aes_key_encrypted=encrypt_secret(values.encoding_aes_key),
            app_secret_encrypted=encrypt_secret(values.app_secret),
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CREATED,
            obj=account,
            changes={"name": (None, values.name), "app_id": (None, values.app_id)},
            details={
                "channel": Channel.WECHAT,
                "safe_mode": bool(values.encoding_aes_key),
                "app_secret": bool(values.app_secret),
            },
        )
    return wechat


def update_wechat_channel(
    *, acting_agent: ActingAgent, wechat: WeChatAccount, values: WeChatSettings
) -> WeChatAccount:
    """Change an Official Account's settings; audited (secrets as "changed", never shown)."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    values = checked(values)
    with transaction.atomic():
        wechat.refresh_from_db(from_queryset=WeChatAccount.objects.select_for_update())
        account = wechat.account
        changes: dict[str, tuple[Any, Any]] = {}
        if account.name != values.name:
            changes["name"] = (account.name, values.name)
            account.name = values.name
            account.save(update_fields=["name"])
        for field in ("app_id", "token"):
            if getattr(wechat, field) != getattr(values, field):
                changes[field] = (getattr(wechat, field), getattr(values, field))
                setattr(wechat, field, getattr(values, field))
        if values.encoding_aes_key:
            was = "set" if wechat.encoding_aes_key_encrypted else ""
            changes["encoding_aes_key"] = (was, "changed")
            wechat.encoding_aes_key_encrypted = encrypt_secret(values.encoding_aes_key)
        elif values.clear_aes_key and wechat.encoding_aes_key_encrypted:
            changes["encoding_aes_key"] = ("set", "removed")
            wechat.encoding_aes_key_encrypted = ""
        if values.app_secret:
            changes["app_secret"] = ("set" if wechat.app_secret_encrypted else "", "changed")
            wechat.app_secret_encrypted = encrypt_secret(values.app_secret)
        if changes:
            wechat.save()
            # A token of the old AppID or secret, dropped once the new ones are committed.
            transaction.on_commit(WeChatApi(wechat).forget_token)
            audit.record(
                actor=acting_agent, kind=AuditKind.CHANNEL_UPDATED, obj=account, changes=changes
            )
    return wechat


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    message: str


def test_wechat_credentials(*, acting_agent: ActingAgent, wechat: WeChatAccount) -> TokenCheck:
    """Ask WeChat for an access token with the saved AppID and AppSecret: the replies' first
    step. Nothing changes but the cached token; the attempt is audited."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    api = WeChatApi(wechat)
    try:
        api.fetch_token()
    except AdapterError as error:
        check = TokenCheck(False, error.message)
    else:
        check = TokenCheck(
            True,
            _("WeChat issued an access token for %(app_id)s: replies can be sent.")
            % {"app_id": wechat.app_id},
        )
    audit.record(
        actor=acting_agent,
        kind=AuditKind.CHANNEL_CONNECTION_TESTED,
        obj=wechat.account,
        details={"wechat_api": check.ok},
    )
    return check
