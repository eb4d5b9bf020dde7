"""Events pushed to agents' browsers over Channels.

A push is a hint, never the truth (channels-redis may drop messages past capacity): pages reload
what changed from the database when they receive one.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def agents_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}-agents"


def publish_after_commit(tenant_id: int, event: str, payload: dict[str, Any]) -> None:
    """Send ``event`` to every connected agent of the tenant once the transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(
                agents_group(tenant_id),
                {"type": "helpdesk.event", "event": event, "payload": payload},
            )
        except Exception:  # a lost push must never fail the work that caused it
            logger.warning("realtime push %s for tenant %s failed", event, tenant_id, exc_info=True)

    transaction.on_commit(send)
