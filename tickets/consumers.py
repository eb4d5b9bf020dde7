"""Agents' browsers subscribe here to their tenant's events (new tickets, new messages)."""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connections

from helpdesk import realtime, tenancy
from helpdesk.models import Tenant

# How long a socket may go on trusting the membership it was opened with.
MEMBERSHIP_RECHECK_SECONDS = 60


@database_sync_to_async
def tenant_of_socket(scope: dict[str, Any]) -> Tenant | None:
    """The agent's tenant, read in one transaction; the database connection is closed after.

    A thousand open sockets must fit in PostgreSQL's connections, so a socket between events
    holds none. (channels' own clean-up does not see connections opened in the function's
    context under asgiref 3.13, hence the explicit close.)
    """
    try:
        return tenancy.activate_for_scope(scope)
    finally:
        connections.close_all()


class AgentEventsConsumer(AsyncJsonWebsocketConsumer):
    group_name = ""
    tenant_id: int | None = None
    verified_at = 0.0

    async def connect(self) -> None:
        tenant = await tenant_of_socket(self.scope)
        if tenant is None:
            await self.close(code=4403)
            return
        self.tenant_id = tenant.pk
        self.verified_at = time.monotonic()
        self.group_name = realtime.agents_group(tenant.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def helpdesk_event(self, message: dict[str, Any]) -> None:
        if time.monotonic() - self.verified_at > MEMBERSHIP_RECHECK_SECONDS:
            # The agent may have left the merchant (or switched to another) since connecting.
            tenant = await tenant_of_socket(self.scope)
            if tenant is None or tenant.pk != self.tenant_id:
                await self.channel_layer.group_discard(self.group_name, self.channel_name)
                self.group_name = ""
                await self.close(code=4403)
                return
            self.verified_at = time.monotonic()
        await self.send_json({"event": message["event"], "payload": message["payload"]})
