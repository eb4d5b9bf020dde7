"""Colleagues on the same ticket see each other over the agents' socket: who has it open and
who is typing, on the in-memory channel layer and on the production one (channels-redis)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from helpdesk import tenancy
from helpdesk.models import Membership, Role
from helpdesk.permissions import SYSTEM
from tests.conftest import _member
from tests.factories import CustomerFactory
from tests.tickets.test_live_events_redis import agent_socket, redis_channel_layer  # noqa: F401
from tickets import consumers, services
from tickets.models import Group, GroupMember, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def memory_channel_layer(settings) -> Iterator[None]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    yield


@pytest.fixture(params=["memory", "redis"])
def channel_layer(request) -> None:
    """Each test runs on both layers: what works in memory must work on Redis too."""
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("needs REDIS_URL (a real Redis)")
        request.getfixturevalue("redis_channel_layer")
    else:
        request.getfixturevalue("memory_channel_layer")


def named(tenant, user, name: str):
    Membership.objects.filter(tenant=tenant, user=user).update(display_name=name)
    return user


@pytest.fixture
def team(tenant_acme, agent_li, supervisor_wang):
    """李娜 works after-sales; 梅梅 works pre-sales; 王主管 supervises every group."""
    with tenancy.activate(tenant_acme):
        after_sales = Group.objects.create(name="After-sales", is_default=True)
        pre_sales = Group.objects.create(name="Pre-sales")
        mei = _member(tenant_acme, "mei.acme", Role.AGENT).user
        GroupMember.objects.create(group=after_sales, user=agent_li)
        GroupMember.objects.create(group=pre_sales, user=mei)
    named(tenant_acme, agent_li, "李娜")
    named(tenant_acme, supervisor_wang, "王主管")
    named(tenant_acme, mei, "梅梅")
    return type("Team", (), {"after_sales": after_sales, "pre_sales": pre_sales, "mei": mei})


def ticket_in(tenant, group: Group | None, subject: str = "冰箱不制冷") -> int:
    with tenancy.activate(tenant):
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="email"
        )
        Ticket.objects.filter(pk=ticket.pk).update(group=group)
        return ticket.number


def said(user, name: str, ticket: int, state: str, box: str = "reply") -> dict:
    return {"ticket": ticket, "state": state, "box": box, "user": user.pk, "name": name}


async def heard(socket: WebsocketCommunicator) -> dict:
    """The next colleague presence the page hears, without its per-page id. An agent's own
    status (``agent.presence``, told to supervisors when an agent's socket connects) is another
    feature's: events are sent after the publisher moves on (helpdesk.realtime), so on Redis a
    supervisor who connected a moment later may hear it too; it is passed over here."""
    event = await socket.receive_json_from(timeout=5)
    while event["event"] == "agent.presence":
        event = await socket.receive_json_from(timeout=5)
    assert event["event"] == "ticket.presence", event
    payload = dict(event["payload"])
    assert payload.pop("page")
    return payload


async def closing(*sockets: WebsocketCommunicator) -> None:
    try:
        for socket in sockets:
            await socket.disconnect()  # re-raises the consumer's exception if it crashed
    finally:
        flush = getattr(get_channel_layer(), "flush", None)
        if flush is not None:
            await flush()


def test_two_agents_on_one_ticket_see_each_other_viewing_typing_and_leaving(
    channel_layer, team, tenant_acme, agent_li, supervisor_wang
):
    number = ticket_in(tenant_acme, team.after_sales)
    li = agent_socket(agent_li)
    wang = agent_socket(supervisor_wang)

    async def scenario() -> None:
        assert (await li.connect(timeout=5))[0]
        assert (await wang.connect(timeout=5))[0]
        try:
            await li.send_json_to({"type": "viewing", "ticket": number})
            assert await li.receive_nothing(timeout=0.3)  # alone on the ticket
            await wang.send_json_to({"type": "viewing", "ticket": number})
            # Li hears Wang arrive; Wang hears, in answer, that Li was already there.
            assert await heard(li) == said(supervisor_wang, "王主管", number, "viewing")
            assert await heard(wang) == said(agent_li, "李娜", number, "viewing")

            await li.send_json_to({"type": "typing", "ticket": number})
            assert await heard(wang) == said(agent_li, "李娜", number, "typing")
            await li.send_json_to({"type": "typing", "ticket": number})  # a burst: relayed once
            assert await wang.receive_nothing(timeout=0.5)
            await wang.send_json_to({"type": "typing", "ticket": number, "box": "note"})
            assert await heard(li) == said(supervisor_wang, "王主管", number, "typing", "note")

            await wang.send_json_to({"type": "left", "ticket": number})  # the page was hidden
            assert await heard(li) == said(supervisor_wang, "王主管", number, "left")
            await wang.send_json_to({"type": "viewing", "ticket": number})  # and shown again
            assert await heard(li) == said(supervisor_wang, "王主管", number, "viewing")
            # Li typed a moment ago: the answer says so.
            assert await heard(wang) == said(agent_li, "李娜", number, "typing")

            await li.disconnect()  # the tab is closed
            assert await heard(wang) == said(agent_li, "李娜", number, "left")
            assert await wang.receive_nothing(timeout=0.3)
        finally:
            await closing(wang)

    asyncio.run(scenario())


def test_only_colleagues_who_may_work_the_ticket_hear_of_it_and_other_tickets_stay_apart(
    channel_layer, team, tenant_acme, tenant_globex, agent_li, supervisor_wang, globex_agent_li
):
    pre_sales = ticket_in(tenant_acme, team.pre_sales, "售前咨询")
    after_sales = ticket_in(tenant_acme, team.after_sales)
    globex_same_number = ticket_in(tenant_globex, None, "Tent pole")
    assert globex_same_number in (pre_sales, after_sales)
    li = agent_socket(agent_li)  # not in pre-sales
    mei = agent_socket(team.mei)
    wang = agent_socket(supervisor_wang)
    globex = agent_socket(globex_agent_li)

    async def scenario() -> None:
        for socket in (li, mei, wang, globex):
            assert (await socket.connect(timeout=5))[0]
        try:
            await mei.send_json_to({"type": "viewing", "ticket": pre_sales})
            await li.send_json_to({"type": "viewing", "ticket": pre_sales})  # not Li's to work
            await li.send_json_to({"type": "typing", "ticket": pre_sales})
            assert await mei.receive_nothing(timeout=0.5)
            assert await li.receive_nothing(timeout=0.1)

            # Another merchant's ticket with the same number is another ticket.
            await globex.send_json_to({"type": "viewing", "ticket": globex_same_number})
            # A colleague on another ticket is not on this one.
            await wang.send_json_to({"type": "viewing", "ticket": after_sales})
            assert await mei.receive_nothing(timeout=0.5)
            assert await globex.receive_nothing(timeout=0.1)

            # Nonsense is ignored, and the socket goes on working.
            for junk in (
                {"type": "viewing", "ticket": str(pre_sales)},
                {"type": "viewing", "ticket": True},
                {"type": "typing", "ticket": -1},
                {"type": "typing", "ticket": 10**12},
                {"type": "viewing"},
                {"type": "left", "ticket": 999_999},
            ):
                await li.send_json_to(junk)
            await wang.send_json_to({"type": "viewing", "ticket": pre_sales})
            assert await heard(mei) == said(supervisor_wang, "王主管", pre_sales, "viewing")
            assert await heard(wang) == said(team.mei, "梅梅", pre_sales, "viewing")
            assert not li.future.done(), "the consumer stopped on a message it did not expect"
        finally:
            await closing(li, mei, wang, globex)

    asyncio.run(scenario())


def test_a_person_does_not_see_their_own_other_page_and_follows_a_bounded_number_of_tickets(
    channel_layer, team, tenant_acme, agent_li, supervisor_wang, monkeypatch
):
    monkeypatch.setattr(consumers, "MAX_TICKETS_FOLLOWED", 2)
    numbers = [ticket_in(tenant_acme, team.after_sales, f"第{i}张") for i in range(3)]
    tab_one, tab_two = agent_socket(agent_li), agent_socket(agent_li)
    wang = agent_socket(supervisor_wang)

    async def scenario() -> None:
        for socket in (tab_one, tab_two, wang):
            assert (await socket.connect(timeout=5))[0]
        try:
            await tab_one.send_json_to({"type": "viewing", "ticket": numbers[0]})
            await tab_two.send_json_to({"type": "viewing", "ticket": numbers[0]})
            assert await tab_one.receive_nothing(timeout=0.5)
            assert await tab_two.receive_nothing(timeout=0.1)

            for number in numbers:
                await wang.send_json_to({"type": "viewing", "ticket": number})
            assert await heard(tab_one) == said(supervisor_wang, "王主管", numbers[0], "viewing")
            assert await heard(tab_two) == said(supervisor_wang, "王主管", numbers[0], "viewing")
            assert (await heard(wang))["ticket"] == numbers[0]
            assert (await heard(wang))["ticket"] == numbers[0]  # both of Li's pages answered
            await tab_one.send_json_to({"type": "viewing", "ticket": numbers[2]})
            assert await wang.receive_nothing(timeout=0.5)  # Wang follows two tickets at most
        finally:
            await closing(tab_one, tab_two, wang)

    asyncio.run(scenario())
