"""Actions on a merchant's channel accounts."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from channels_in.models import ChannelAccount
from tickets.services import record_audit


def resume_channel(*, actor: Any, account: ChannelAccount) -> ChannelAccount:
    """Resume a channel paused by a permanent failure, once an admin has fixed its cause."""
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        if not account.paused:
            return account
        record_audit(
            actor=actor,
            action="channel.resumed",
            obj=account,
            changes={"last_error": account.last_error},
        )
        account.paused = False
        account.last_error = ""
        account.save(update_fields=["paused", "last_error"])
    return account
