"""Who works a ticket: taking, assigning and moving it from its page and from the list, replying
takes an unassigned ticket, and people are shown by their names."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpdesk import tenancy
from helpdesk.models import Membership, Role
from helpdesk.permissions import SYSTEM
from tests.conftest import _member, acting, login
from tests.factories import CustomerFactory
from tickets import services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Group, GroupMember, Message, Ticket

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html", "HTTP_REFERER": "http://testserver/tickets/"}


def _ticket(subject: str, group: Group | None = None, assignee: object = None) -> Ticket:
    address = f"customer{Ticket.objects.count()}@example.cn"
    customer = CustomerFactory(name="李伟", email=address)
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=subject,
        body_text="你好",
        metadata={"from": address},
    )
    Ticket.objects.filter(pk=ticket.pk).update(group=group, assignee=assignee)
    ticket.refresh_from_db()
    return ticket


def _named(user: object, name: str) -> object:
    Membership.objects.filter(tenant=tenancy.require_tenant(), user=user).update(display_name=name)
    return user


@pytest.fixture
def team(in_acme, agent_li, supervisor_wang):
    after_sales = Group.objects.create(name="After-sales 售后", is_default=True)
    pre_sales = Group.objects.create(name="Pre-sales 售前")
    mei = _member(in_acme, "mei.acme", Role.AGENT).user
    GroupMember.objects.create(group=after_sales, user=agent_li)
    GroupMember.objects.create(group=pre_sales, user=mei)
    _named(agent_li, "李丽")
    _named(mei, "梅梅")
    _named(supervisor_wang, "王主管")
    return type("Team", (), {"after_sales": after_sales, "pre_sales": pre_sales, "mei": mei})


def _assigned(ticket: Ticket) -> object:
    ticket.refresh_from_db()
    return ticket.assignee


# --- from the ticket page ---------------------------------------------------------------------


def test_an_agent_takes_an_unassigned_ticket_and_sees_their_name(agent_li, team):
    ticket = _ticket("吸油烟机噪音很大", team.after_sales)
    client = login(agent_li)
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert "Take it" in page
    assert "Move to group" not in page  # agents do not move tickets
    response = client.post(f"/tickets/{ticket.number}/take/", follow=True)
    assert _assigned(ticket) == agent_li
    page = response.content.decode()
    assert f"Ticket #{ticket.number} is now assigned to 李丽." in page
    assert '<span class="assignee">李丽</span>' in page
    event = AuditEvent.objects.get(action=AuditKind.TICKET_ASSIGNED)
    assert (event.actor, event.changes) == (agent_li, {"assignee": [None, agent_li.pk]})


def test_the_assign_list_offers_the_groups_members_first_by_name(supervisor_wang, team):
    ticket = _ticket("漏水", team.pre_sales)
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    in_group = page.index('label="In this group"')
    others = page.index('label="Others who may work it"')
    # (The header names the signed-in supervisor too: look inside the list.)
    assert in_group < page.index("梅梅", in_group) < others < page.index("王主管", in_group)
    # Li is an agent of another group: she may not work a Pre-sales ticket, so she is not offered.
    assert "李丽" not in page


def test_a_supervisor_reassigns_a_ticket_to_a_colleague(supervisor_wang, agent_li, team):
    ticket = _ticket("漏水", team.after_sales, assignee=agent_li)
    response = login(supervisor_wang).post(
        f"/tickets/{ticket.number}/assign/", {"assignee": team.mei.pk}, follow=True
    )
    assert _assigned(ticket) == team.mei
    assert "is now assigned to 梅梅" in response.content.decode()


def test_an_agent_cannot_take_or_reassign_a_colleagues_ticket(agent_li, team):
    ticket = _ticket("漏水", team.after_sales, assignee=team.mei)
    client = login(agent_li)
    assert "Take it" not in client.get(f"/tickets/{ticket.number}/").content.decode()
    response = client.post(f"/tickets/{ticket.number}/take/")
    assert response.status_code == 403
    response = client.post(f"/tickets/{ticket.number}/assign/", {"assignee": agent_li.pk})
    assert response.status_code == 403
    assert _assigned(ticket) == team.mei
    assert not AuditEvent.objects.filter(action=AuditKind.TICKET_ASSIGNED).exists()


def test_assigning_to_someone_outside_the_merchant_is_refused(
    supervisor_wang, team, tenant_globex, globex_agent_li
):
    ticket = _ticket("漏水", team.after_sales)
    client = login(supervisor_wang)
    for bad in (globex_agent_li.pk, "nobody"):
        response = client.post(f"/tickets/{ticket.number}/assign/", {"assignee": bad})
        assert response.status_code == 400
    assert _assigned(ticket) is None


def test_a_supervisor_moves_a_ticket_to_another_group_where_it_waits(
    supervisor_wang, agent_li, team
):
    ticket = _ticket("想买新款", team.after_sales, assignee=agent_li)
    response = login(supervisor_wang).post(
        f"/tickets/{ticket.number}/group/", {"group": team.pre_sales.pk}, follow=True
    )
    assert "moved to Pre-sales 售前" in response.content.decode()
    ticket.refresh_from_db()
    # Li is not in Pre-sales: the ticket waits in its queue for one of its agents.
    assert (ticket.group, ticket.assignee) == (team.pre_sales, None)
    assert ticket.queued_at is not None
    event = AuditEvent.objects.get(action=AuditKind.TICKET_ROUTED, actor=supervisor_wang)
    assert event.changes["group"] == ["After-sales 售后", "Pre-sales 售前"]
    assert event.changes["assignee"] == [agent_li.pk, None]


def test_a_moved_ticket_stays_with_an_agent_of_the_new_group(supervisor_wang, team):
    ticket = _ticket("想买新款", team.after_sales, assignee=team.mei)
    services.move_to_group(
        acting_agent=acting(supervisor_wang), ticket=ticket, group=team.pre_sales
    )
    ticket.refresh_from_db()
    assert (ticket.group, ticket.assignee) == (team.pre_sales, team.mei)


def test_an_agent_cannot_move_a_ticket(agent_li, team):
    ticket = _ticket("漏水", team.after_sales)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/group/", {"group": team.pre_sales.pk}
    )
    assert response.status_code == 403
    ticket.refresh_from_db()
    assert ticket.group == team.after_sales


# --- replying takes it ------------------------------------------------------------------------


def test_replying_to_an_unassigned_ticket_takes_it(acme_email, agent_li, team):
    ticket = _ticket("漏水", team.after_sales)
    services.reply_to_customer(acting_agent=acting(agent_li), ticket=ticket, text="您好，已处理")
    assert _assigned(ticket) == agent_li
    event = AuditEvent.objects.get(action=AuditKind.TICKET_ASSIGNED)
    assert (event.actor, event.changes["assignee"]) == (agent_li, [None, agent_li.pk])


def test_replying_to_a_colleagues_ticket_leaves_it_with_them(acme_email, supervisor_wang, team):
    ticket = _ticket("漏水", team.pre_sales, assignee=team.mei)
    services.reply_to_customer(acting_agent=acting(supervisor_wang), ticket=ticket, text="您好")
    assert _assigned(ticket) == team.mei
    assert not AuditEvent.objects.filter(action=AuditKind.TICKET_ASSIGNED).exists()


def test_the_helpdesks_own_replies_take_nothing(acme_email, team):
    ticket = _ticket("漏水", team.after_sales)
    services.reply_to_customer(acting_agent=SYSTEM, ticket=ticket, text="我们已收到您的消息")
    assert _assigned(ticket) is None


# --- from the list ----------------------------------------------------------------------------


def test_bulk_assign_names_the_ticket_that_was_refused(agent_li, team):
    free = _ticket("无人处理", team.after_sales)
    taken = _ticket("已有人处理", team.after_sales, assignee=team.mei)
    response = login(agent_li).post(
        "/tickets/bulk/",
        {"action": "assign", "assignee": "me", "tickets": [free.number, taken.number]},
        follow=True,
    )
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/tickets/"
    assert "1 ticket updated." in page
    assert f"#{taken.number}: Your role does not allow you to reassign tickets" in page
    assert (_assigned(free), _assigned(taken)) == (agent_li, team.mei)


def test_bulk_status_and_tag_go_through_each_ticket(supervisor_wang, team):
    first = _ticket("一", team.after_sales)
    second = _ticket("二", team.pre_sales)
    client = login(supervisor_wang)
    numbers = [first.number, second.number]
    response = client.post(
        "/tickets/bulk/",
        {"action": "status", "status": "pending", "tickets": numbers, "next": "/tickets/?mine=1"},
    )
    assert response["Location"] == "/tickets/?mine=1"
    client.post("/tickets/bulk/", {"action": "tag", "tag": "Leak", "tickets": numbers})
    for ticket in (first, second):
        ticket.refresh_from_db()
        assert ticket.status == "pending"
        assert list(ticket.tags.values_list("name", flat=True)) == ["leak"]
    assert AuditEvent.objects.filter(action=AuditKind.TICKET_STATUS_CHANGED).count() == 2


def test_bulk_without_tickets_or_action_is_a_clear_400(supervisor_wang, team):
    ticket = _ticket("一", team.after_sales)
    client = login(supervisor_wang)
    assert client.post("/tickets/bulk/", {"action": "status", "status": "open"}).status_code == 400
    response = client.post("/tickets/bulk/", {"action": "merge", "tickets": [ticket.number]})
    assert response.status_code == 400
    response = client.post(
        "/tickets/bulk/", {"action": "status", "status": "gone", "tickets": [ticket.number]}
    )
    assert response.status_code == 400


def test_the_list_offers_take_on_unassigned_rows_and_shows_names(agent_li, team):
    _ticket("无人处理", team.after_sales)
    _ticket("李丽的", team.after_sales, assignee=agent_li)
    page = login(agent_li).get("/tickets/").content.decode()
    assert page.count('class="take"') == 1
    assert "<td>李丽</td>" in page
    assert "li.acme</td>" not in page


# --- another merchant -------------------------------------------------------------------------


def test_another_merchants_ticket_is_404_and_untouched(
    tenant_globex, globex_agent_li, supervisor_wang, team
):
    with tenancy.activate(tenant_globex):
        for subject in ("a", "b", "c"):
            theirs = _ticket(subject)
    client = login(supervisor_wang)
    for url, form in (
        (f"/tickets/{theirs.number}/take/", {}),
        (f"/tickets/{theirs.number}/assign/", {"assignee": supervisor_wang.pk}),
        (f"/tickets/{theirs.number}/group/", {"group": team.pre_sales.pk}),
    ):
        assert client.post(url, form).status_code == 404
    response = client.post(
        "/tickets/bulk/",
        {"action": "assign", "assignee": "me", "tickets": [theirs.number]},
        follow=True,
    )
    assert f"#{theirs.number}: no such ticket" in response.content.decode()
    with tenancy.activate(tenant_globex):
        theirs.refresh_from_db()
        assert theirs.assignee is None


def test_a_group_of_another_merchant_cannot_be_moved_to(tenant_globex, supervisor_wang, team):
    with tenancy.activate(tenant_globex):
        their_group = Group.objects.create(name="Globex team")
    ticket = _ticket("漏水", team.after_sales)
    response = login(supervisor_wang).post(
        f"/tickets/{ticket.number}/group/", {"group": their_group.pk}
    )
    assert response.status_code == 400
    ticket.refresh_from_db()
    assert ticket.group == team.after_sales


# --- bounded queries --------------------------------------------------------------------------


def _list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/tickets/").status_code == 200
    return len(queries)


def test_the_list_with_names_costs_the_same_queries_for_2_or_20_tickets(
    agent_li, team, django_assert_max_num_queries
):
    for n in range(2):
        _ticket(f"工单 {n}", team.after_sales, assignee=agent_li if n % 2 else None)
    client = login(agent_li)
    few = _list_queries(client)
    for n in range(2, 20):
        _ticket(f"工单 {n}", team.after_sales, assignee=agent_li if n % 2 else team.mei)
    with django_assert_max_num_queries(few):
        page = client.get("/tickets/").content.decode()
    assert page.count("<td>梅梅</td>") == 9 and page.count("<td>李丽</td>") == 10
