"""Agents' browsers subscribe here to their tenant's events (new tickets, new messages, who is
online), send heartbeats that keep their presence live (tickets/presence.py), and say which
ticket they have open and when they type in it (tickets/ticket_presence.py)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import DatabaseError, connections, transaction

from helpdesk import permissions, realtime, tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.models import Tenant
from tickets import presence, ticket_presence
from tickets.models import GroupMember

logger = logging.getLogger(__name__)

# How long a socket may go on trusting the membership it was opened with.
MEMBERSHIP_RECHECK_SECONDS = 60
# Pages send a heartbeat every 20 s; a socket writes at most one per this many seconds, however
# often (or however many times over) its page sends them.
HEARTBEAT_MIN_SECONDS = 10
# Colleagues on a ticket: a socket relays at most one "typing" per ticket this often (pages send
# one per 3 s), and follows at most this many tickets at once.
TYPING_MIN_SECONDS = 2.0
TYPING_SHOWN_SECONDS = 6.0
MAX_TICKETS_FOLLOWED = 8


# Events only people who may supervise hear: an alert names figures and agents.
SUPERVISOR_EVENT_PREFIX = "supervisor."
SUPERVISOR_EVENTS = frozenset({"alert.raised"})


def is_for_supervisors(event: str) -> bool:
    return event.startswith(SUPERVISOR_EVENT_PREFIX) or event in SUPERVISOR_EVENTS


@dataclass(frozen=True)
class Reach:
    """Which events a socket passes on: tickets by the same rule as the pages
    (helpdesk.permissions.can_work_ticket), agents' presence to supervisors and to the agent
    themselves, supervisors' events (alerts, the dashboard's) to supervisors only; held in
    memory between membership rechecks."""

    user_id: int
    every_group: bool
    group_ids: frozenset[int]
    supervises: bool = False

    def allows(self, reach: dict[str, Any] | None) -> bool:
        if reach is None or self.every_group:
            return True
        group = reach.get("group")
        return group is None or group in self.group_ids or reach.get("assignee") == self.user_id

    def hears(self, message: dict[str, Any]) -> bool:
        if message.get("event") == presence.PRESENCE_EVENT:
            return self.supervises or message["payload"].get("user") == self.user_id
        if is_for_supervisors(message.get("event", "")):
            return self.supervises
        return self.allows(message.get("reach"))


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
                supervises=acting.can(permissions.Capability.SUPERVISE),
            )
    except PermissionDenied:
        return None
    finally:
        connections.close_all()


# What ``heartbeat_of_socket`` answers when the database could not be reached this time.
UNKNOWN = ""


@database_sync_to_async
def heartbeat_of_socket(tenant: Tenant, user: Any) -> str | None:
    """Record the socket's agent as present in ``tenant``; their status now, None when they take
    no work there (a platform operator on support access), or ``UNKNOWN``. The database
    connection is closed after, as in ``tenant_of_socket``."""
    try:
        with tenancy.activate(tenant):
            return presence.record_heartbeat(user=user).status
    except PermissionDenied:
        return None
    except DatabaseError:
        # A database blip must not close every agent's socket; the next heartbeat tries again.
        logger.warning("heartbeat of user %s not recorded", user.pk, exc_info=True)
        return UNKNOWN
    finally:
        connections.close_all()


@database_sync_to_async
def viewer_name_of_socket(tenant: Tenant, user: Any, number: int) -> str | None:
    """``ticket_presence.viewer_name`` from a socket; the database connection is closed after."""
    try:
        return ticket_presence.viewer_name(user=user, tenant=tenant, number=number)
    except DatabaseError:
        logger.warning("ticket presence of user %s not checked", user.pk, exc_info=True)
        return None
    finally:
        connections.close_all()


class AgentEventsConsumer(AsyncJsonWebsocketConsumer):
    group_name = ""
    tenant: Tenant | None = None
    tenant_id: int | None = None
    reach: Reach | None = None
    verified_at = 0.0
    # Presence: whether this socket's person takes work here, when a heartbeat was last
    # written, their status as last read and as this socket last told its page.
    takes_work = True
    heartbeat_at: float | None = None
    status = UNKNOWN
    told_status = UNKNOWN
    # Colleagues on a ticket: the tickets this socket's page shows (number: when the person's
    # right to work it was last checked), when it last typed in each, and how it is named.
    followed: dict[int, float]
    typed_at: dict[int, float]
    viewer_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.followed = {}
        self.typed_at = {}
        self.tab = uuid.uuid4().hex[:12]  # tells a person's two pages apart, nothing more

    async def connect(self) -> None:
        found = await tenant_of_socket(self.scope)
        if found is None:
            await self.close(code=4403)
            return
        self.tenant, self.reach = found
        self.tenant_id = self.tenant.pk
        self.verified_at = time.monotonic()
        # Opening the page is a heartbeat. It is written before the socket joins the group: the
        # page learns its own status in answer to its first heartbeat, not as a pushed event.
        await self.record_heartbeat()
        self.group_name = realtime.agents_group(self.tenant.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # Presence stays: a reloaded page reconnects at once, and the sweep notices an agent
        # whose pages all went quiet (tickets.presence.sweep_presence). Colleagues on a ticket
        # hear at once that this page left it.
        for number in list(self.followed):
            await self.leave_ticket(number)
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        # Whatever a page sends that is not a heartbeat is ignored: never a reason to crash.
        if not text_data:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "heartbeat":
            await self.heartbeat()
        elif kind in ticket_presence.STATES:
            await self.ticket_presence_from_page(kind, content)

    async def heartbeat(self) -> None:
        """The page is open: record it (at most once per ``HEARTBEAT_MIN_SECONDS``) and tell
        the page its presence when it changed since the page was last told."""
        if not self.group_name or not await self.still_member():
            return
        now = time.monotonic()
        if self.heartbeat_at is None or now - self.heartbeat_at >= HEARTBEAT_MIN_SECONDS:
            await self.record_heartbeat()
        if self.status and self.status != self.told_status and self.reach is not None:
            self.told_status = self.status
            await self.send_json(
                {
                    "event": presence.PRESENCE_EVENT,
                    "payload": {"user": self.reach.user_id, "status": self.status},
                }
            )

    async def record_heartbeat(self) -> None:
        if not self.takes_work or self.tenant is None:
            return
        self.heartbeat_at = time.monotonic()
        status = await heartbeat_of_socket(self.tenant, self.scope["user"])
        if status is None:
            self.takes_work = False
        elif status:
            self.status = status

    async def still_member(self) -> bool:
        """Recheck the membership the socket was opened with once it is old; a person who left
        the merchant (or switched to another) is disconnected."""
        if time.monotonic() - self.verified_at <= MEMBERSHIP_RECHECK_SECONDS:
            return True
        found = await tenant_of_socket(self.scope)
        if found is None or found[0].pk != self.tenant_id:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            self.group_name = ""
            await self.close(code=4403)
            return False
        self.reach = found[1]
        self.verified_at = time.monotonic()
        return True

    async def helpdesk_event(self, message: dict[str, Any]) -> None:
        if not await self.still_member():
            return
        if self.reach is None or not self.reach.hears(message):
            return  # a ticket this agent may not work: not even its number and subject
        if message["event"] == presence.PRESENCE_EVENT and (
            message["payload"].get("user") == self.reach.user_id
        ):
            if message["payload"].get("status") == self.told_status:
                return  # the page heard it already, in answer to its heartbeat
            self.status = self.told_status = message["payload"]["status"]
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    # Colleagues on a ticket (tickets/ticket_presence.py).

    async def ticket_presence_from_page(self, kind: str, content: dict[str, Any]) -> None:
        """The page shows a ticket ("viewing"), types in it ("typing") or left it ("left"):
        tell the colleagues who have it open, once the person may work it."""
        number = ticket_presence.ticket_number_of(content)
        if number is None or self.tenant is None or not self.group_name:
            return
        if kind == "left":
            await self.leave_ticket(number)
            return
        if not await self.still_member():
            return
        now = time.monotonic()
        checked_at = self.followed.get(number)
        first = checked_at is None
        if first and len(self.followed) >= MAX_TICKETS_FOLLOWED:
            return
        if first or now - checked_at > MEMBERSHIP_RECHECK_SECONDS:
            name = await viewer_name_of_socket(self.tenant, self.scope["user"], number)
            if name is None:  # not theirs to work (any more): they hear and tell nothing
                if not first:
                    await self.leave_ticket(number)
                return
            self.viewer_name = name
            self.followed[number] = now
            if first:
                group = ticket_presence.ticket_group(self.tenant.pk, number)
                await self.channel_layer.group_add(group, self.channel_name)
        if kind == "typing":
            typed = self.typed_at.get(number)
            if typed is not None and now - typed < TYPING_MIN_SECONDS:
                return
            self.typed_at[number] = now
        message = self.ticket_presence_message(number, kind, box=ticket_presence.box_of(content))
        # A newcomer asks those already there to say so, to it alone.
        message["ask"] = first
        await self.channel_layer.group_send(
            ticket_presence.ticket_group(self.tenant.pk, number), message
        )

    async def leave_ticket(self, number: int) -> None:
        if number not in self.followed or self.tenant is None:
            return
        del self.followed[number]
        self.typed_at.pop(number, None)
        group = ticket_presence.ticket_group(self.tenant.pk, number)
        await self.channel_layer.group_send(group, self.ticket_presence_message(number, "left"))
        await self.channel_layer.group_discard(group, self.channel_name)

    def ticket_presence_message(
        self, number: int, state: str, box: str = "reply"
    ) -> dict[str, Any]:
        return {
            "type": "ticket.presence",
            "ticket": number,
            "state": state,
            "box": box,
            "user": self.reach.user_id if self.reach else None,
            "name": self.viewer_name,
            "tab": self.tab,
            "sender": self.channel_name,
        }

    async def ticket_presence(self, message: dict[str, Any]) -> None:
        """A colleague's page on a ticket this page shows: pass it on, and answer a newcomer."""
        number = message.get("ticket")
        if number not in self.followed or message.get("sender") == self.channel_name:
            return
        if self.reach is None or message.get("user") == self.reach.user_id:
            return  # the person's own other page
        payload = {key: message.get(key) for key in ("ticket", "state", "box", "user", "name")}
        payload["page"] = message.get("tab")
        await self.send_json({"event": ticket_presence.PRESENCE_EVENT, "payload": payload})
        if message.get("ask") and message.get("state") != "left":
            typed = self.typed_at.get(number)
            typing = typed is not None and time.monotonic() - typed < TYPING_SHOWN_SECONDS
            answer = self.ticket_presence_message(number, "typing" if typing else "viewing")
            await self.channel_layer.send(message["sender"], answer)
