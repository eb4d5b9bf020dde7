"""What a supervisor sees on the queue page (how many wait, for how long, who is there to take
them) and what happens when they give a waiting ticket to someone by hand; and the service
clock on the ticket list and the ticket page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import assignment, services
from tickets.models import AgentPresence, AuditEvent, Group, GroupMember, Ticket
from tickets.queues import queue_overview, waiting_tickets

pytestmark = pytest.mark.django_db

AFTER_SALES = "售后 After-sales"
PRE_SALES = "售前 Pre-sales"


def a_ticket(
    subject: str, *, channel: str = "email", customer: Any = None, **fields: Any
) -> Ticket:
    """A ticket of the active merchant with ``fields`` written as they would be by routing."""
    ticket = services.open_ticket(
        acting_agent=SYSTEM,
        customer=customer or CustomerFactory(),
        subject=subject,
        channel=channel,
    )
    if fields:
        Ticket.objects.filter(pk=ticket.pk).update(**fields)
        ticket.refresh_from_db()
    return ticket


def waiting(
    subject: str, group: Group | None, *, minutes: int, now: datetime, **fields: Any
) -> Ticket:
    return a_ticket(subject, group=group, queued_at=now - timedelta(minutes=minutes), **fields)


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def zhang(tenant_acme: Any) -> Any:
    """An agent of acme's after-sales group who never came online (no presence row)."""
    user = UserFactory(username="zhang.acme")
    MembershipFactory(tenant=tenant_acme, user=user, role=Role.AGENT, display_name="张伟")
    return user


@pytest.fixture
def after_sales(in_acme: Any, agent_li: Any, zhang: Any, now: datetime) -> Group:
    """Acme's after-sales group: li online with one chat and one email, zhang offline; three
    tickets wait (a VIP's for 40 min, one past its first-response target for 10 min, one due
    in 15 min for 20 min)."""
    group = Group.objects.create(name=AFTER_SALES, is_default=True)
    GroupMember.objects.create(group=group, user=agent_li, chat_capacity=3, ticket_capacity=20)
    GroupMember.objects.create(group=group, user=zhang, chat_capacity=2, ticket_capacity=10)
    AgentPresence.objects.create(user=agent_li, status=AgentPresence.Status.ONLINE)
    Group.objects.create(name=PRE_SALES)

    waiting(
        "VIP：洗碗机不出水",
        group,
        minutes=40,
        now=now,
        customer=CustomerFactory(name="王芳", is_vip=True),
        first_response_due_at=now + timedelta(hours=3),
    )
    waiting(
        "吸油烟机噪音很大",
        group,
        minutes=10,
        now=now,
        customer=CustomerFactory(name="李伟"),
        first_response_due_at=now - timedelta(minutes=5),
    )
    waiting(
        "发票抬头写错了",
        group,
        minutes=20,
        now=now,
        first_response_due_at=now + timedelta(minutes=15),
    )
    # li's work: a live chat and an email, both open; a solved one does not count.
    a_ticket("聊天：安装时间", channel="chat", group=group, assignee=agent_li, queued_at=None)
    a_ticket("邮件：退货地址", group=group, assignee=agent_li, queued_at=None, status="open")
    a_ticket("已解决的", group=group, assignee=agent_li, queued_at=None, status="solved")
    # Not waiting: pending on the customer, though its queued_at was never cleared.
    waiting("等客户回复", group, minutes=90, now=now, status="pending")
    return group


def rows_by_name(now: datetime) -> dict[str, Any]:
    return {row.name: row for row in queue_overview(now=now)}


# --- the overview ----------------------------------------------------------------------------


def test_overview_counts_each_groups_waiting_tickets_and_their_waits(after_sales, now):
    rows = rows_by_name(now)
    queue = rows[AFTER_SALES]
    assert queue.waiting == 3
    assert queue.oldest_wait == timedelta(minutes=40)
    assert abs(queue.average_wait - timedelta(minutes=70 / 3)) < timedelta(seconds=1)
    assert queue.oldest_wait_words == "40m"
    assert queue.vip == 1
    assert (queue.response_missed, queue.response_due_soon) == (1, 1)
    empty = rows[PRE_SALES]
    assert (empty.waiting, empty.oldest_wait, empty.average_wait) == (0, None, None)
    assert "Not in any group" not in rows


def test_overview_shows_each_agents_presence_load_and_capacity(after_sales, agent_li, now):
    agents = {a.name: a for a in rows_by_name(now)[AFTER_SALES].agents}
    li = agents["li.acme"]
    assert (li.presence, li.load) == ("online", assignment.Load(chats=1, tickets=1))
    assert li.load_words == "1/3 chats, 1/20 tickets"
    zhang = agents["张伟"]  # the name the merchant gave them
    assert (zhang.presence, zhang.presence_label) == ("offline", "Offline")
    assert zhang.load_words == "0/2 chats, 0/10 tickets"


def test_open_unassigned_tickets_in_no_group_get_a_row_of_their_own(
    after_sales, supervisor_wang, now
):
    lost = waiting("没有分组的工单", None, minutes=7, now=now)
    Ticket.objects.filter(pk=lost.pk).update(queued_at=None)  # from before routing existed
    rows = rows_by_name(now)
    unrouted = rows["Not in any group"]
    assert unrouted.waiting == 1
    assert [w.ticket.subject for w in waiting_tickets(None)] == ["没有分组的工单"]
    # Anyone of the merchant may be given it.
    assert {"li.acme", "张伟", "wang.acme"} <= {a.name for a in unrouted.agents}


def test_queue_lists_waiting_tickets_in_hand_out_order_with_their_waits(after_sales, now):
    queue = waiting_tickets(after_sales, now=now)
    assert [w.ticket.subject for w in queue] == [
        "VIP：洗碗机不出水",  # VIP first
        "吸油烟机噪音很大",  # then the first response due soonest (already missed)
        "发票抬头写错了",
    ]
    assert [w.waited_words for w in queue] == ["40m", "10m", "20m"]
    assert [w.is_vip for w in queue] == [True, False, False]
    assert queue[0].ticket.customer.name == "王芳"


def test_queue_stops_at_the_limit(after_sales, now):
    assert len(waiting_tickets(after_sales, limit=2, now=now)) == 2


def test_the_overview_costs_the_same_queries_however_many_tickets_wait(after_sales, now):
    with CaptureQueriesContext(connection) as few:
        rows = queue_overview(now=now)
        [waiting_tickets(row.group, now=now) for row in rows if row.waiting]
    for n in range(5):
        waiting(f"又一个 {n}", after_sales, minutes=n, now=now, customer=CustomerFactory())
    with CaptureQueriesContext(connection) as many:
        rows = queue_overview(now=now)
        queue = [waiting_tickets(row.group, now=now) for row in rows if row.waiting]
        [(w.ticket.customer.name, w.is_vip) for w in queue[0]]
    assert len(queue[0]) == 8
    assert len(many) == len(few)


def test_other_merchants_groups_and_tickets_never_appear(
    after_sales, tenant_globex, globex_agent_li, supervisor_wang, now
):
    with tenancy.activate(tenant_globex):
        hiking = Group.objects.create(name="Hiking gear")
        GroupMember.objects.create(group=hiking, user=globex_agent_li)
        waiting("Globex: tent pole snapped", hiking, minutes=300, now=now)
        waiting("Globex: unrouted", None, minutes=300, now=now)
    rows = rows_by_name(now)
    assert set(rows) == {AFTER_SALES, PRE_SALES}
    assert rows[AFTER_SALES].oldest_wait == timedelta(minutes=40)
    page = login(supervisor_wang).get("/tickets/queues/").content.decode()
    assert "Globex" not in page and "Hiking gear" not in page and "li.globex" not in page


# --- the page --------------------------------------------------------------------------------


def test_agents_may_not_open_the_queue_page(after_sales, agent_li):
    client = login(agent_li)
    assert client.get("/tickets/queues/").status_code == 403
    assert 'href="/tickets/queues/"' not in client.get("/tickets/").content.decode()


def test_supervisor_sees_each_queue_with_waits_agents_and_waiting_tickets(
    after_sales, supervisor_wang
):
    client = login(supervisor_wang)
    assert 'href="/tickets/queues/"' in client.get("/tickets/").content.decode()
    response = client.get("/tickets/queues/")
    assert response.status_code == 200
    page = response.content.decode()
    assert AFTER_SALES in page and PRE_SALES in page
    assert "VIP：洗碗机不出水" in page and "40m" in page
    assert "1/3 chats, 1/20 tickets" in page and "Online" in page
    assert "等客户回复" not in page  # pending: not waiting
    assert "No tickets waiting." in page  # pre-sales
    # "Give to" offers the group's agents with their presence and load.
    assert "li.acme · Online · 1/3 chats, 1/20 tickets" in page
    assert "张伟 · Offline · 0/2 chats, 0/10 tickets" in page


# --- giving a ticket by hand -----------------------------------------------------------------


def test_supervisor_gives_a_waiting_ticket_to_an_agent(after_sales, supervisor_wang, zhang, now):
    vip = Ticket.objects.get(subject="VIP：洗碗机不出水")
    client = login(supervisor_wang)
    response = client.post("/tickets/queues/", {"ticket": vip.pk, "assignee": zhang.pk})
    assert response.status_code == 302 and response["Location"] == "/tickets/queues/"
    page = client.get(response["Location"]).content.decode()
    assert f"Ticket #{vip.number} given to 张伟." in page
    assert "VIP：洗碗机不出水" not in page
    vip.refresh_from_db()
    assert vip.assignee == zhang
    assert vip.queued_at is None
    event = AuditEvent.objects.get(action="ticket.assigned", object_id=str(vip.pk))
    assert (event.actor, event.changes) == (supervisor_wang, {"assignee": [None, zhang.pk]})
    assert rows_by_name(timezone.now())[AFTER_SALES].waiting == 2


def test_giving_another_merchants_ticket_is_not_found(
    after_sales, supervisor_wang, agent_li, tenant_globex, now
):
    with tenancy.activate(tenant_globex):
        theirs = waiting("Globex: tent pole snapped", None, minutes=3, now=now)
    response = login(supervisor_wang).post(
        "/tickets/queues/", {"ticket": theirs.pk, "assignee": agent_li.pk}
    )
    assert response.status_code == 404
    with tenancy.activate(tenant_globex):
        assert Ticket.objects.get(pk=theirs.pk).assignee_id is None


@pytest.mark.parametrize("posted", ["", "abc", str(2**70)])
def test_a_ticket_id_that_is_not_one_is_not_found(after_sales, supervisor_wang, agent_li, posted):
    response = login(supervisor_wang).post(
        "/tickets/queues/", {"ticket": posted, "assignee": agent_li.pk}
    )
    assert response.status_code == 404


def test_an_agent_may_not_give_tickets_out(after_sales, agent_li, zhang):
    ticket = Ticket.objects.get(subject="吸油烟机噪音很大")
    response = login(agent_li).post("/tickets/queues/", {"ticket": ticket.pk, "assignee": zhang.pk})
    assert response.status_code == 403
    ticket.refresh_from_db()
    assert ticket.assignee_id is None
    assert not AuditEvent.objects.filter(action="ticket.assigned").exists()


def test_a_ticket_cannot_be_given_to_someone_of_another_merchant(
    after_sales, supervisor_wang, globex_agent_li
):
    ticket = Ticket.objects.get(subject="吸油烟机噪音很大")
    client = login(supervisor_wang)
    response = client.post(
        "/tickets/queues/",
        {"ticket": ticket.pk, "assignee": globex_agent_li.pk},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER="/tickets/queues/",
        follow=True,
    )
    assert "Choose an agent of this merchant" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.assignee_id is None
    assert not AuditEvent.objects.filter(action="ticket.assigned").exists()


# --- the ticket page and the list ------------------------------------------------------------


def test_ticket_page_says_where_and_how_long_a_ticket_waits(after_sales, agent_li, now):
    ticket = Ticket.objects.get(subject="吸油烟机噪音很大")
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert f"Waiting in {AFTER_SALES} for 10m" in page


def test_ticket_page_says_when_an_assigned_ticket_was_given(after_sales, supervisor_wang, zhang):
    ticket = Ticket.objects.get(subject="吸油烟机噪音很大")
    login(supervisor_wang).post("/tickets/queues/", {"ticket": ticket.pk, "assignee": zhang.pk})
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    assert "Waiting in" not in page
    assert "Assigned now" in page


def _row_of(page: str, subject: str) -> str:
    """The ticket list's table row that holds ``subject``."""
    return next(row for row in page.split("<tr")[1:] if subject in row)


def test_ticket_list_shows_the_time_left_and_marks_a_missed_target_red(after_sales, agent_li):
    page = login(agent_li).get("/tickets/").content.decode()
    missed = _row_of(page, "吸油烟机噪音很大")
    assert 'class="sla breached"' in missed and "overdue by" in missed
    running = _row_of(page, "VIP：洗碗机不出水")
    assert "3h 0m left" in running and "breached" not in running
    # Tickets with no clock running show none.
    assert "sla" not in _row_of(page, "聊天：安装时间")


def test_ticket_page_shows_the_time_left_and_marks_a_missed_target_red(after_sales, agent_li):
    client = login(agent_li)
    missed = Ticket.objects.get(subject="吸油烟机噪音很大")
    page = client.get(f"/tickets/{missed.number}/").content.decode()
    assert 'class="sla breached"' in page and "overdue by" in page
    running = Ticket.objects.get(subject="VIP：洗碗机不出水")
    page = client.get(f"/tickets/{running.number}/").content.decode()
    assert "3h 0m left" in page and "sla breached" not in page


def test_the_ticket_list_costs_the_same_queries_however_many_tickets_it_shows(
    after_sales, agent_li, now
):
    client = login(agent_li)
    client.get("/tickets/")  # the session and the merchant are read once
    with CaptureQueriesContext(connection) as few:
        assert client.get("/tickets/").status_code == 200
    for n in range(5):
        waiting(
            f"又一个 {n}",
            after_sales,
            minutes=n,
            now=now,
            first_response_due_at=now + timedelta(minutes=n - 2),
        )
    with CaptureQueriesContext(connection) as many:
        page = client.get("/tickets/").content.decode()
    assert page.count('class="sla') >= 8
    assert len(many) == len(few)
