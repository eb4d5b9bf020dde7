"""Agents' browsers subscribe here to their tenant's events (new tickets, new messages)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from helpdesk import realtime, tenancy


class AgentEventsConsumer(AsyncJsonWebsocketConsumer):
    group_name = ""

    async def connect(self) -> None:
        tenant = await database_sync_to_async(tenancy.activate_for_scope)(self.scope)
        if tenant is None:
            await self.close(code=4403)
            return
        self.group_name = realtime.agents_group(tenant.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def helpdesk_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})
