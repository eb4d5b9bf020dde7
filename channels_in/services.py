"""Actions on a merchant's channel accounts."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from channels_in.models import ChannelAccount
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind


def resume_channel(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Resume a channel paused by a permanent failure, once an admin has fixed its cause."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        if not account.paused:
            return account
        changes: dict[str, tuple[Any, Any]] = {"paused": (True, False)}
        if account.last_error:
            changes["last_error"] = (account.last_error, "")
        audit.record(
            actor=acting_agent, kind=AuditKind.CHANNEL_RESUMED, obj=account, changes=changes
        )
        account.paused = False
        account.last_error = ""
        account.save(update_fields=["paused", "last_error"])
    return account
