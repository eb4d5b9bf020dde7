"""Agents' browsers hear about their own merchant's tickets, and only those."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory
from tickets import services
from tickets.consumers import AgentEventsConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def communicator_for(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(AgentEventsConsumer.as_asgi(), "/ws/agent/")
    communicator.scope["user"] = user
    communicator.scope["session"] = {}
    return communicator


def open_ticket_for(tenant, subject: str) -> None:
    with tenancy.activate(tenant):
        services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="email"
        )


def test_a_new_ticket_is_pushed_to_its_merchants_agents_only(
    agent_li, globex_agent_li, tenant_acme, tenant_globex
):
    async def scenario() -> tuple[dict, bool]:
        acme = communicator_for(agent_li)
        globex = communicator_for(globex_agent_li)
        assert (await acme.connect())[0]
        assert (await globex.connect())[0]
        await sync_to_async(open_ticket_for)(tenant_acme, "空调不制冷")
        event = await acme.receive_json_from(timeout=5)
        globex_heard = not await globex.receive_nothing(timeout=0.5)
        await acme.disconnect()
        await globex.disconnect()
        return event, globex_heard

    event, globex_heard = asyncio.run(scenario())
    assert event["event"] == "ticket.created"
    assert event["payload"]["subject"] == "空调不制冷"
    assert globex_heard is False


def test_anonymous_sockets_are_refused():
    async def scenario() -> bool:
        communicator = communicator_for(AnonymousUser())
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert asyncio.run(scenario()) is False


def test_an_agent_removed_from_the_merchant_stops_hearing_its_events(
    agent_li, tenant_acme, monkeypatch
):
    from tickets import consumers

    async def scenario() -> tuple[dict, dict]:
        socket = communicator_for(agent_li)
        assert (await socket.connect())[0]
        await sync_to_async(open_ticket_for)(tenant_acme, "第一张")
        heard = await socket.receive_json_from(timeout=5)
        await sync_to_async(agent_li.memberships.all().delete)()
        monkeypatch.setattr(consumers, "MEMBERSHIP_RECHECK_SECONDS", -1)
        await sync_to_async(open_ticket_for)(tenant_acme, "第二张")
        closed = await socket.receive_output(timeout=5)
        await socket.disconnect()
        return heard, closed

    heard, closed = asyncio.run(scenario())
    assert heard["payload"]["subject"] == "第一张"
    assert closed == {"type": "websocket.close", "code": 4403}


def test_agents_hear_only_about_tickets_they_may_work(agent_li, supervisor_wang, tenant_acme):
    from tickets.models import Group, GroupMember

    with tenancy.activate(tenant_acme):
        presales = Group.objects.create(name="售前 Pre-sales")
        aftersales = Group.objects.create(name="售后 After-sales")
        GroupMember.objects.create(group=aftersales, user=agent_li)

    def open_in(group, subject: str) -> None:
        with tenancy.activate(tenant_acme):
            ticket = services.open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="email"
            )
            from tickets.models import Ticket

            Ticket.objects.filter(pk=ticket.pk).update(group=group)
            services.add_note(
                acting_agent=SYSTEM, ticket=Ticket.objects.get(pk=ticket.pk), text="x"
            )

    async def scenario() -> tuple[list[str], list[str]]:
        agent = communicator_for(agent_li)
        supervisor = communicator_for(supervisor_wang)
        assert (await agent.connect())[0]
        assert (await supervisor.connect())[0]
        # An unrouted ticket is everyone's; then one in another group, then one in li's group.
        await sync_to_async(open_in)(presales, "预售咨询")
        await sync_to_async(open_in)(aftersales, "售后维修")
        heard: dict[str, list[str]] = {"agent": [], "supervisor": []}
        for name, socket in (("agent", agent), ("supervisor", supervisor)):
            while not await socket.receive_nothing(timeout=0.5):
                event = await socket.receive_json_from(timeout=1)
                heard[name].append(f"{event['event']}#{event['payload']['ticket']}")
            await socket.disconnect()
        return heard["agent"], heard["supervisor"]

    agent_heard, supervisor_heard = asyncio.run(scenario())
    # Ticket 1 was created unrouted (heard by both) and then moved to pre-sales: li's note event
    # about it is withheld. Ticket 2 ends in li's group: li hears its note.
    assert "ticket.message#1" not in agent_heard
    assert "ticket.message#2" in agent_heard
    assert {"ticket.message#1", "ticket.message#2"} <= set(supervisor_heard)
