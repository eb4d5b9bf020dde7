"""Routing as a customer and an agent notice it: conversations arrive through the signed JSON
message API (the live channel until the chat widget exists) and land with the right agent at
once, fairly, or wait in their group's queue until someone has room."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.models import Role, Tenant
from tests.channels_in.test_json_api import message, post
from tests.conftest import acting
from tests.factories import MembershipFactory, UserFactory
from tickets import assignment, services
from tickets.audit import AuditKind
from tickets.models import (
    AgentPresence,
    AuditEvent,
    Customer,
    Group,
    GroupHoliday,
    GroupMember,
    Message,
    RoutingStrategy,
    Ticket,
)

pytestmark = pytest.mark.django_db(transaction=True)


# --- the merchant's team -------------------------------------------------------------------


def agent(tenant: Tenant, name: str, *, online: bool = True) -> Any:
    user = UserFactory(username=f"{name}.{tenant.slug}")
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT)
    with tenancy.activate(tenant):
        AgentPresence.objects.create(
            user=user,
            status=AgentPresence.Status.ONLINE if online else AgentPresence.Status.OFFLINE,
            last_heartbeat_at=timezone.now(),
        )
    return user


def team(
    tenant: Tenant,
    names: list[str],
    *,
    group: str = "售后 After-sales",
    chats: int = 3,
    strategy: str = RoutingStrategy.LEAST_LOADED,
    sticky: bool = True,
    default: bool = True,
    **fields: Any,
) -> tuple[Group, list[Any]]:
    users = [agent(tenant, name) for name in names]
    with tenancy.activate(tenant):
        team_group = Group.objects.create(
            name=group, is_default=default, strategy=strategy, sticky=sticky, **fields
        )
        for user in users:
            GroupMember.objects.create(group=team_group, user=user, chat_capacity=chats)
    return team_group, users


def arrive(account: Any, n: int, *, customer: dict[str, Any] | None = None, **fields: Any) -> None:
    """Conversation ``n`` starts: a customer writes through the merchant's API channel."""
    answer = post(
        account,
        message(
            id=f"m-{n}",
            conversation_id=f"c-{n}",
            text=fields.pop("text", f"第{n}个问题：订单什么时候发货？"),
            customer=customer or {"id": f"cust-{n}", "name": f"顾客{n}"},
            **fields,
        ),
    )
    assert answer.status_code == 202, answer.content


def ticket_of(tenant: Tenant, n: int) -> Ticket:
    with tenancy.activate(tenant):
        return (
            Ticket.objects.select_related("assignee", "group")
            .filter(messages__conversation_id=f"c-{n}")
            .distinct()
            .get()
        )


def assignees(tenant: Tenant) -> dict[int, str | None]:
    with tenancy.activate(tenant):
        return {
            t.number: (t.assignee.username.split(".")[0] if t.assignee else None)
            for t in Ticket.objects.select_related("assignee").order_by("number")
        }


def solve(tenant: Tenant, user: Any, ticket: Ticket) -> None:
    with tenancy.activate(tenant):
        services.change_ticket_status(
            acting_agent=acting(user, tenant), ticket=ticket, status=Ticket.Status.SOLVED
        )


# --- strategies -----------------------------------------------------------------------------


def test_round_robin_gives_conversations_in_turn(tenant_acme, acme_api):
    team(tenant_acme, ["an", "bo", "cai"], strategy=RoutingStrategy.ROUND_ROBIN, sticky=False)
    for n in range(1, 7):
        arrive(acme_api, n)
    assert list(assignees(tenant_acme).values()) == ["an", "bo", "cai", "an", "bo", "cai"]


def test_round_robin_skips_an_agent_who_is_full(tenant_acme, acme_api):
    _group, (an, _bo) = team(
        tenant_acme, ["an", "bo"], strategy=RoutingStrategy.ROUND_ROBIN, sticky=False
    )
    with tenancy.activate(tenant_acme):
        GroupMember.objects.filter(user=an).update(chat_capacity=1)
    for n in range(1, 5):
        arrive(acme_api, n)
    assert list(assignees(tenant_acme).values()) == ["an", "bo", "bo", "bo"]


def test_least_loaded_gives_the_next_conversation_to_whoever_has_least(tenant_acme, acme_api):
    _group, (an, bo) = team(tenant_acme, ["an", "bo"], chats=5, sticky=False)
    for n in range(1, 5):
        arrive(acme_api, n)
    assert sorted(assignees(tenant_acme).values()) == ["an", "an", "bo", "bo"]
    # an solves both of theirs: the next two conversations go to an, who now has none.
    with tenancy.activate(tenant_acme):
        mine = list(Ticket.objects.filter(assignee=an))
    for ticket in mine:
        solve(tenant_acme, an, ticket)
    arrive(acme_api, 5)
    arrive(acme_api, 6)
    assert assignees(tenant_acme)[5] == assignees(tenant_acme)[6] == "an"


def test_a_returning_customer_goes_back_to_the_agent_who_answered_them(
    tenant_acme, acme_api, receiver
):
    _group, (an, bo) = team(tenant_acme, ["an", "bo"], strategy=RoutingStrategy.ROUND_ROBIN)
    loyal = {"id": "cust-loyal", "name": "老顾客"}
    arrive(acme_api, 1, customer=loyal)
    first = ticket_of(tenant_acme, 1)
    helper = first.assignee
    with tenancy.activate(tenant_acme):
        services.reply_to_customer(
            acting_agent=acting(helper, tenant_acme), ticket=first, text="已为您查询，明天发货。"
        )
    solve(tenant_acme, helper, first)
    arrive(acme_api, 2)  # someone else: round robin moves on
    arrive(acme_api, 3, customer=loyal)  # the loyal customer comes back with a new question
    assert ticket_of(tenant_acme, 3).assignee == helper
    with tenancy.activate(tenant_acme):
        routed = AuditEvent.objects.get(
            action=AuditKind.TICKET_AUTO_ASSIGNED, object_id=str(ticket_of(tenant_acme, 3).pk)
        )
    assert routed.changes["details"]["rule"] == "sticky"


def test_a_returning_customer_whose_agent_is_offline_gets_someone_else(
    tenant_acme, acme_api, receiver
):
    _group, (an, bo) = team(tenant_acme, ["an", "bo"])
    loyal = {"id": "cust-loyal", "name": "老顾客"}
    arrive(acme_api, 1, customer=loyal)
    first = ticket_of(tenant_acme, 1)
    with tenancy.activate(tenant_acme):
        services.reply_to_customer(
            acting_agent=acting(first.assignee, tenant_acme), ticket=first, text="好的"
        )
        AgentPresence.objects.filter(user=first.assignee).update(status="offline")
    solve(tenant_acme, first.assignee, first)
    arrive(acme_api, 2, customer=loyal, text="另一个问题")
    # The same conversation id would continue ticket 1; a new one opens ticket 2.
    second = ticket_of(tenant_acme, 2)
    assert second.assignee is not None and second.assignee != first.assignee


# --- which group ----------------------------------------------------------------------------


def test_a_customer_who_chose_a_persona_group_is_served_by_it(tenant_acme, acme_api):
    team(tenant_acme, ["an"], group="General")
    friendly, (mei,) = team(
        tenant_acme, ["mei"], group="Friendly 亲切", default=False, persona="friendly"
    )
    arrive(acme_api, 1, customer={"id": "c-fr", "name": "王芳", "persona": "friendly"})
    arrive(acme_api, 2)
    assert ticket_of(tenant_acme, 1).group == friendly
    assert ticket_of(tenant_acme, 1).assignee == mei
    assert ticket_of(tenant_acme, 2).group.name == "General"  # nobody else lands in a persona


def test_an_unknown_persona_is_not_applied_and_the_message_is_kept(tenant_acme, acme_api):
    general, _ = team(tenant_acme, ["an"], group="General")
    arrive(acme_api, 1, customer={"id": "c-x", "name": "X", "persona": "grumpy"})
    assert ticket_of(tenant_acme, 1).group == general


def test_skills_route_english_and_chinese_and_product_categories(tenant_acme, acme_api):
    team(tenant_acme, ["an"], group="General")
    english, _ = team(tenant_acme, ["emma"], group="English desk", default=False, languages=["en"])
    kitchen, _ = team(
        tenant_acme,
        ["chu"],
        group="厨电 Kitchen",
        default=False,
        languages=["zh"],
        categories=["Range hoods"],
    )
    arrive(acme_api, 1, text="Hello, where is my order? It was due yesterday.")
    arrive(acme_api, 2, text="油烟机不吸烟了", category="range hoods")
    arrive(acme_api, 3, text="油烟机不吸烟了", category="Dishwashers")
    arrive(
        acme_api, 4, text="Hi", customer={"id": "c-4", "locale": "zh-hans"}, category="Range hoods"
    )
    assert ticket_of(tenant_acme, 1).group == english
    assert ticket_of(tenant_acme, 2).group == kitchen
    assert ticket_of(tenant_acme, 3).group.name == "General"
    assert ticket_of(tenant_acme, 4).group == kitchen  # the customer's stated language wins
    assert ticket_of(tenant_acme, 1).language == "en"


# --- queues ---------------------------------------------------------------------------------


def test_when_nobody_has_room_conversations_wait_and_are_handed_out_as_agents_free_up(
    tenant_acme, acme_api
):
    _group, (an,) = team(tenant_acme, ["an"], chats=1)
    arrive(acme_api, 1)
    arrive(acme_api, 2)
    arrive(acme_api, 3)
    first, second = ticket_of(tenant_acme, 1), ticket_of(tenant_acme, 2)
    assert first.assignee == an and first.queued_at is None
    assert second.assignee is None and second.queued_at is not None
    solve(tenant_acme, an, first)
    assert ticket_of(tenant_acme, 2).assignee == an  # the one waiting longest comes next
    assert ticket_of(tenant_acme, 3).assignee is None


def test_vip_customers_and_tickets_near_their_target_go_first(tenant_acme, acme_api):
    _group, (an,) = team(tenant_acme, ["an"], chats=1)
    arrive(acme_api, 1)  # an is now full
    arrive(acme_api, 2)
    arrive(acme_api, 3, priority="urgent")
    arrive(acme_api, 4, customer={"id": "c-vip", "name": "VIP 客户", "vip": True})
    with tenancy.activate(tenant_acme):
        # Ticket 3's first response is due soonest, ticket 2 has no target at all.
        Ticket.objects.filter(pk=ticket_of(tenant_acme, 3).pk).update(
            first_response_due_at=timezone.now() + timedelta(minutes=5)
        )
        order = list(assignment.queue_for(ticket_of(tenant_acme, 2).group))
        assert [t.pk for t in order] == [ticket_of(tenant_acme, n).pk for n in (4, 3, 2)]
    solve(tenant_acme, an, ticket_of(tenant_acme, 1))
    assert ticket_of(tenant_acme, 4).assignee == an


def test_only_online_agents_get_work_and_one_coming_online_takes_the_queue(tenant_acme, acme_api):
    from tickets import presence

    _group, (an,) = team(tenant_acme, ["an"], chats=2)
    with tenancy.activate(tenant_acme):
        AgentPresence.objects.filter(user=an).update(status="away", chosen_status="away")
    arrive(acme_api, 1)
    arrive(acme_api, 2)
    assert set(assignees(tenant_acme).values()) == {None}
    with tenancy.activate(tenant_acme):
        presence.set_presence(acting_agent=acting(an, tenant_acme), status="online")
    assert set(assignees(tenant_acme).values()) == {"an"}


def test_a_chat_whose_agent_goes_offline_returns_to_the_queue_and_to_a_colleague(
    tenant_acme, acme_api
):
    from tickets import presence

    _group, (an, bo) = team(tenant_acme, ["an", "bo"], chats=2, sticky=False)
    with tenancy.activate(tenant_acme):
        AgentPresence.objects.filter(user=bo).update(status="offline")
    arrive(acme_api, 1)
    assert ticket_of(tenant_acme, 1).assignee == an
    with tenancy.activate(tenant_acme):
        AgentPresence.objects.filter(user=bo).update(status="online")
        presence.set_presence(acting_agent=acting(an, tenant_acme), status="offline")
        returned = AuditEvent.objects.get(action=AuditKind.TICKET_RETURNED_TO_QUEUE)
    assert ticket_of(tenant_acme, 1).assignee == bo  # never lost: bo has it now
    assert returned.changes["details"]["reason"]
    with tenancy.activate(tenant_acme):
        # The conversation's messages are all still there, on the same ticket.
        assert Message.objects.filter(ticket=ticket_of(tenant_acme, 1)).count() == 1


def test_an_email_ticket_stays_with_its_agent_when_they_go_offline(tenant_acme):
    from tickets import presence

    _group, (an,) = team(tenant_acme, ["an"])
    with tenancy.activate(tenant_acme):
        customer = Customer.objects.create(name="Mail customer")
        ticket = services.open_ticket(
            acting_agent=acting(an, tenant_acme), customer=customer, subject="发票", channel="email"
        )
        services.assign_ticket(acting_agent=acting(an, tenant_acme), ticket=ticket, assignee=an)
        presence.set_presence(acting_agent=acting(an, tenant_acme), status="offline")
        ticket.refresh_from_db()
    assert ticket.assignee == an


def test_every_automatic_assignment_is_audited_with_its_rule(tenant_acme, acme_api):
    _group, (an,) = team(tenant_acme, ["an"], sticky=False)
    arrive(acme_api, 1)
    with tenancy.activate(tenant_acme):
        event = AuditEvent.objects.get(action=AuditKind.TICKET_AUTO_ASSIGNED)
    assert event.actor_label == "system"
    assert event.changes["assignee"] == [None, an.pk]
    assert event.changes["details"]["rule"] == "least_loaded"


def test_another_merchants_agents_never_get_this_merchants_conversations(
    tenant_acme, tenant_globex, acme_api
):
    team(tenant_globex, ["gx"], group="Globex team")
    arrive(acme_api, 1)  # acme has no agent online at all
    assert assignees(tenant_acme) == {1: None}


# --- business hours -------------------------------------------------------------------------

EVERY_DAY_NINE_TO_SIX = [[["09:00", "18:00"]] for _day in range(7)]


def closed_today(tenant: Tenant, group: Group) -> datetime:
    """Make today (the merchant's date) a holiday of ``group``; returns tomorrow 09:00 there."""
    zone = ZoneInfo(tenant.time_zone)
    today = timezone.now().astimezone(zone).date()
    with tenancy.activate(tenant):
        GroupHoliday.objects.create(group=group, date=today, name="店庆")
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).replace(hour=9)


def test_out_of_hours_the_customer_is_told_on_their_channel_when_to_expect_an_answer(
    tenant_acme, acme_api, receiver
):
    group, _ = team(tenant_acme, ["an"], always_open=False, weekly_hours=EVERY_DAY_NINE_TO_SIX)
    opens = closed_today(tenant_acme, group)
    arrive(acme_api, 1)
    post(acme_api, message(id="m-1b", conversation_id="c-1", customer={"id": "cust-1"}))
    ticket = ticket_of(tenant_acme, 1)
    with tenancy.activate(tenant_acme):
        notices = list(ticket.messages.filter(direction=Message.Direction.OUTBOUND))
        assert ticket.messages.filter(direction=Message.Direction.INBOUND).count() == 2
    assert len(notices) == 1  # told once, not for every message
    assert f"{opens.month}月{opens.day}日" in notices[0].body_text  # the customer wrote Chinese
    assert "09:00 (Asia/Shanghai)" in notices[0].body_text
    assert notices[0].channel == "api" and notices[0].author_user is None
    # The merchant's system received it for the customer, on the channel they wrote on.
    (posted,) = [json.loads(seen.body) for seen in receiver.seen]
    assert posted["customer"]["id"] == "cust-1"
    assert "09:00 (Asia/Shanghai)" in json.dumps(posted, ensure_ascii=False)


def test_a_channel_that_cannot_reply_files_the_message_all_the_same(tenant_acme, acme_api):
    group, _ = team(tenant_acme, ["an"], always_open=False, weekly_hours=EVERY_DAY_NINE_TO_SIX)
    closed_today(tenant_acme, group)
    arrive(acme_api, 1)  # the channel has no callback URL: no notice can be sent
    with tenancy.activate(tenant_acme):
        ticket = ticket_of(tenant_acme, 1)
        assert ticket.messages.filter(direction=Message.Direction.INBOUND).count() == 1
        assert not ticket.messages.filter(direction=Message.Direction.OUTBOUND).exists()


def test_a_merchants_own_out_of_hours_reply_is_used_in_new_york(tenant_globex, local_server):
    from channels_in.models import ApiChannel, ChannelAccount

    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="api", name="Globex app")
        ApiChannel.objects.create(account=account, callback_url=local_server.url("/replies"))
    group, _ = team(
        tenant_globex,
        ["gx"],
        always_open=False,
        weekly_hours=EVERY_DAY_NINE_TO_SIX,
        out_of_hours_reply="We're out on the trail. Back {opens_at}!",
    )
    closed_today(tenant_globex, group)
    arrive(account, 1, text="Where is my tent?")
    with tenancy.activate(tenant_globex):
        notice = ticket_of(tenant_globex, 1).messages.get(direction=Message.Direction.OUTBOUND)
    assert notice.body_text.startswith("We're out on the trail. Back ")
    assert "09:00 (America/New_York)!" in notice.body_text


def test_in_hours_nobody_is_told_anything(tenant_acme, acme_api):
    team(
        tenant_acme,
        ["an"],
        always_open=False,
        weekly_hours=[[["00:00", "24:00"]] for _day in range(7)],
    )
    arrive(acme_api, 1)
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()


OFFER_BUDGET = 12


def test_giving_a_new_conversation_to_an_agent_takes_at_most_its_statement_budget(
    tenant_acme, acme_api, django_assert_max_num_queries, monkeypatch
):
    """The claim a worker runs for each arrival: lock the ticket, rank the group's online agents
    by load, lock the chosen seat (in a savepoint) and count their work, assign, audit."""
    from tickets import tasks

    team(tenant_acme, ["an", "bo", "cai"], sticky=False)
    offered: list[tuple] = []
    monkeypatch.setattr(tasks.offer_ticket, "delay_on_commit", lambda *a: offered.append(a))
    arrive(acme_api, 1)
    ((tenant_id, ticket_id),) = offered
    with tenancy.activate(tenant_acme), django_assert_max_num_queries(OFFER_BUDGET):
        assignment.offer_ticket(ticket_id=ticket_id)
    assert ticket_of(tenant_acme, 1).assignee is not None
