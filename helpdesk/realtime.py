"""Events pushed to agents' browsers over Channels.

A push is a hint, never the truth (channels-redis may drop messages past capacity): pages reload
what changed from the database when they receive one. Events of one transaction leave together,
once, after it commits; a rolled-back transaction sends nothing.
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


class _Batch:
    """The events of one transaction, flushed by a single on-commit callback."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def flush(self) -> None:
        layer = get_channel_layer()
        if layer is None or not self.events:
            return

        async def send_all() -> None:
            for group, message in self.events:
                await layer.group_send(group, message)

        try:
            async_to_sync(send_all)()
        except Exception:  # a lost push must never fail the work that caused it
            logger.warning("realtime push of %d events failed", len(self.events), exc_info=True)


def publish_after_commit(
    tenant_id: int, event: str, payload: dict[str, Any], *, ticket: Any = None
) -> None:
    """Send ``event`` to the tenant's connected agents once the transaction commits.

    An event about a ticket carries the ticket's group and assignee (never sent to browsers), so
    each socket passes it on only to an agent who may work that ticket.
    """
    message: dict[str, Any] = {"type": "helpdesk.event", "event": event, "payload": payload}
    if ticket is not None:
        message["reach"] = {"group": ticket.group_id, "assignee": ticket.assignee_id}
    connection = transaction.get_connection()
    batch: _Batch | None = getattr(connection, "_helpdesk_realtime_batch", None)
    pending = batch is not None and any(
        callback == batch.flush for _, callback, _ in connection.run_on_commit
    )
    if not connection.in_atomic_block or not pending:
        batch = _Batch()
        connection._helpdesk_realtime_batch = batch
        batch.events.append((agents_group(tenant_id), message))
        transaction.on_commit(batch.flush)
        return
    batch.events.append((agents_group(tenant_id), message))
