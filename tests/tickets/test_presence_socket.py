"""Agents' pages keep their presence live over the agents' WebSocket, on the production channel
layer (channels-redis) through the real ASGI app, and supervisors hear who comes and goes."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from helpdesk import tenancy
from tests.conftest import acting
from tests.factories import UserFactory
from tests.tickets.test_live_events_redis import agent_socket, redis_channel_layer  # noqa: F401 (a fixture)
from tickets import consumers, presence
from tickets.models import AgentPresence

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("redis_channel_layer"),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real Redis)"),
]


def presence_row(tenant, user) -> tuple[str, str] | None:
    with tenancy.activate(tenant):
        row = AgentPresence.objects.filter(user=user).first()
        return (row.status, row.chosen_status) if row else None


def sweep_later(tenant, user, seconds: int) -> None:
    """The beat sweep runs ``seconds`` after ``user``'s last heartbeat; everyone else's pages
    kept beating."""
    with tenancy.activate(tenant):
        later = AgentPresence.objects.get(user=user).last_heartbeat_at + timedelta(seconds=seconds)
        AgentPresence.objects.exclude(user=user).update(last_heartbeat_at=later)
        presence.sweep_presence(now=later)


def choose(tenant, user, status: str) -> None:
    with tenancy.activate(tenant):
        presence.set_presence(acting_agent=acting(user, tenant), status=status)


async def closing(*sockets: WebsocketCommunicator) -> None:
    try:
        for socket in sockets:
            await socket.disconnect()  # re-raises the consumer's exception if it crashed
    finally:
        await get_channel_layer().flush()  # this run's keys only (its prefix)


def presence_event(user, status: str) -> dict:
    return {"event": "agent.presence", "payload": {"user": user.pk, "status": status}}


async def heard_about(socket, user) -> dict:
    """The next event ``socket`` hears about ``user``'s presence. The listener's own "online",
    sent when its socket connected and after the publisher moves on (helpdesk.realtime), may
    reach it on Redis first: presence about someone else is passed over."""
    event = await socket.receive_json_from(timeout=5)
    while event.get("event") == "agent.presence" and event["payload"]["user"] != user.pk:
        event = await socket.receive_json_from(timeout=5)
    return event


def test_a_heartbeat_keeps_an_agent_online_and_their_supervisor_hears_every_change(
    agent_li, supervisor_wang, tenant_acme, settings, monkeypatch
):
    settings.HELPDESK_PRESENCE_AWAY_SECONDS = 60
    wang = agent_socket(supervisor_wang)
    li = agent_socket(agent_li)

    async def scenario() -> None:
        assert (await wang.connect(timeout=5))[0]
        assert (await li.connect(timeout=5))[0]
        try:
            # Opening the page is the first heartbeat: li is online, and the supervisor hears it.
            assert await sync_to_async(presence_row)(tenant_acme, agent_li) == ("online", "online")
            assert await heard_about(wang, agent_li) == presence_event(agent_li, "online")
            # li's page learns its own status in answer to its heartbeat.
            await li.send_json_to({"type": "heartbeat"})
            assert await li.receive_json_from(timeout=5) == presence_event(agent_li, "online")

            # li's laptop sleeps: the sweep moves them away; both pages hear it.
            await sync_to_async(sweep_later)(tenant_acme, agent_li, 61)
            assert await heard_about(wang, agent_li) == presence_event(agent_li, "away")
            assert await li.receive_json_from(timeout=5) == presence_event(agent_li, "away")

            # It wakes up: the next heartbeat over the socket puts li back online.
            monkeypatch.setattr(consumers, "HEARTBEAT_MIN_SECONDS", 0)
            await li.send_json_to({"type": "heartbeat"})
            assert await li.receive_json_from(timeout=5) == presence_event(agent_li, "online")
            assert await heard_about(wang, agent_li) == presence_event(agent_li, "online")
            assert await sync_to_async(presence_row)(tenant_acme, agent_li) == ("online", "online")
            assert await li.receive_nothing(timeout=0.5)  # told once, not twice

            # An agent does not hear about colleagues; the supervisor's own page hears itself.
            await sync_to_async(choose)(tenant_acme, supervisor_wang, "away")
            assert await wang.receive_json_from(timeout=5) == presence_event(
                supervisor_wang, "away"
            )
            assert await li.receive_nothing(timeout=0.5)
        finally:
            await closing(li, wang)

    asyncio.run(scenario())


def test_heartbeats_are_written_at_most_once_per_interval_and_anything_else_is_ignored(
    agent_li, supervisor_wang, tenant_acme
):
    li = agent_socket(agent_li)
    wang = agent_socket(supervisor_wang)

    def heard_at():
        with tenancy.activate(tenant_acme):
            return AgentPresence.objects.get(user=agent_li).last_heartbeat_at

    async def scenario() -> None:
        assert (await li.connect(timeout=5))[0]
        assert (await wang.connect(timeout=5))[0]
        try:
            first = await sync_to_async(heard_at)()
            for junk in ("not json", "[1, 2]", '{"type": "status", "status": "offline"}', "null"):
                await li.send_to(text_data=junk)
            await li.send_to(bytes_data=b"\x00\x01")
            for _ in range(5):
                await li.send_json_to({"type": "heartbeat"})
            assert await li.receive_json_from(timeout=5) == presence_event(agent_li, "online")
            assert await li.receive_nothing(timeout=0.5)
            assert not li.future.done(), "the consumer stopped on a message it did not expect"
            assert await sync_to_async(heard_at)() == first  # one write for the whole burst
            assert await sync_to_async(presence_row)(tenant_acme, agent_li) == ("online", "online")
            # The socket still works.
            await sync_to_async(choose)(tenant_acme, agent_li, "away")
            assert await li.receive_json_from(timeout=5) == presence_event(agent_li, "away")
        finally:
            await closing(li, wang)

    asyncio.run(scenario())


def test_closing_the_page_leaves_the_agent_online_until_the_sweep_notices(
    agent_li, tenant_acme, settings
):
    settings.HELPDESK_PRESENCE_OFFLINE_SECONDS = 300
    li = agent_socket(agent_li)

    async def scenario() -> None:
        assert (await li.connect(timeout=5))[0]
        await closing(li)

    asyncio.run(scenario())
    assert presence_row(tenant_acme, agent_li) == ("online", "online")  # a reload reconnects
    sweep_later(tenant_acme, agent_li, 301)
    assert presence_row(tenant_acme, agent_li) == ("offline", "online")


def test_a_platform_operators_socket_gives_them_no_presence(tenant_acme):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    socket = agent_socket(operator)

    async def scenario() -> None:
        assert (await socket.connect(timeout=5))[0]
        try:
            await socket.send_json_to({"type": "heartbeat"})
            assert await socket.receive_nothing(timeout=0.5)
        finally:
            await closing(socket)

    asyncio.run(scenario())
    assert presence_row(tenant_acme, operator) is None
