"""Agents' browsers subscribe here to their tenant's events (new tickets, new messages)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connections, transaction

from helpdesk import permissions, realtime, tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.models import Tenant
from tickets.models import GroupMember

# How long a socket may go on trusting the membership it was opened with.
MEMBERSHIP_RECHECK_SECONDS = 60


@dataclass(frozen=True)
class Reach:
    """Which tickets' events a socket passes on: the same rule as the pages
    (helpdesk.permissions.can_work_ticket), held in memory between membership rechecks."""

    user_id: int
    every_group: bool
    group_ids: frozenset[int]

    def allows(self, reach: dict[str, Any] | None) -> bool:
        if reach is None or self.every_group:
            return True
        group = reach.get("group")
        return group is None or group in self.group_ids or reach.get("assignee") == self.user_id


@database_sync_to_async
def tenant_of_socket(scope: dict[str, Any]) -> tuple[Tenant, Reach] | None:
    """The agent's tenant and reach, read in one transaction; the database connection is closed
    after.

    A thousand open sockets must fit in PostgreSQL's connections, so a socket between events
    holds none. (channels' own clean-up does not see connections opened in the function's
    context under asgiref 3.13, hence the explicit close.)
    """
    try:
        tenant = tenancy.activate_for_scope(scope)
        if tenant is None:
            return None
        user = scope["user"]
        with tenancy.activate(tenant), transaction.atomic():
            acting = permissions.acting_agent_for(user, tenant)
            group_ids = frozenset(
                GroupMember.objects.filter(user=user).values_list("group_id", flat=True)
            )
            return tenant, Reach(
                user_id=user.pk,
                every_group=permissions.works_every_group(acting),
                group_ids=group_ids,
            )
    except PermissionDenied:
        return None
    finally:
        connections.close_all()


class AgentEventsConsumer(AsyncJsonWebsocketConsumer):
    group_name = ""
    tenant_id: int | None = None
    reach: Reach | None = None
    verified_at = 0.0

    async def connect(self) -> None:
        found = await tenant_of_socket(self.scope)
        if found is None:
            await self.close(code=4403)
            return
        tenant, self.reach = found
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
            found = await tenant_of_socket(self.scope)
            if found is None or found[0].pk != self.tenant_id:
                await self.channel_layer.group_discard(self.group_name, self.channel_name)
                self.group_name = ""
                await self.close(code=4403)
                return
            self.reach = found[1]
            self.verified_at = time.monotonic()
        if self.reach is None or not self.reach.allows(message.get("reach")):
            return  # a ticket this agent may not work: not even its number and subject
        await self.send_json({"event": message["event"], "payload": message["payload"]})
