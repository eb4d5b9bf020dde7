"""Actions on a merchant's channel accounts."""

from __future__ import annotations

from django.db import transaction

from channels_in.models import ChannelAccount
from helpdesk.permissions import ActingAgent, Capability, require
from tickets.services import record_audit


def resume_channel(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Resume a channel paused by a permanent failure, once an admin has fixed its cause."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        if not account.paused:
            return account
        record_audit(
            actor=acting_agent,
            action="channel.resumed",
            obj=account,
            changes={"last_error": account.last_error},
        )
        account.paused = False
        account.last_error = ""
        account.save(update_fields=["paused", "last_error"])
    return account
