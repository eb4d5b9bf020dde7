"""The inbox: views with counts, filters, spam kept apart, keyset pages, and a bounded number
of queries whatever the number of tickets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_in.models import CallBack
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import inbox, services
from tickets.models import Group, GroupMember, Ticket

pytestmark = pytest.mark.django_db


def _ticket(subject: str, **fields: object) -> Ticket:
    ticket = services.open_ticket(
        acting_agent=SYSTEM,
        customer=CustomerFactory(name="李伟"),
        subject=subject,
        channel=fields.pop("channel", "email"),
    )
    if fields:
        Ticket.objects.filter(pk=ticket.pk).update(**fields)
        ticket.refresh_from_db()
    return ticket


def _rows(page: str) -> list[str]:
    """The subjects of the list's rows, top to bottom."""
    return re.findall(r"<a href=\"/tickets/\d+/\" data-nav-open>([^<]*)</a>", page)


def _count(page: str, view: str) -> str:
    return re.search(rf'data-count="{view}">([^<]*)<', page).group(1)


@pytest.fixture
def inbox_of_li(in_acme, agent_li, supervisor_wang):
    after_sales = Group.objects.create(name="After-sales 售后")
    GroupMember.objects.create(group=after_sales, user=agent_li)
    _ticket("李丽的工单", assignee=agent_li, status="open", group=after_sales)
    _ticket("没人管的工单", group=after_sales)
    _ticket("王主管的工单", assignee=supervisor_wang, status="open", group=after_sales)
    _ticket("等客户回复", assignee=agent_li, status="pending", group=after_sales)
    _ticket("已解决的工单", assignee=agent_li, status="solved", group=after_sales)
    _ticket("垃圾广告", ignored_at=timezone.now(), ignored_reason="spam")
    _ticket("别组的工单", group=Group.objects.create(name="VIP"), channel="chat")
    return after_sales


def test_each_view_shows_its_tickets_and_counts(agent_li, supervisor_wang, inbox_of_li):
    client = login(supervisor_wang)
    expected = {
        "open": {"李丽的工单", "没人管的工单", "王主管的工单", "等客户回复", "别组的工单"},
        "unassigned": {"没人管的工单", "别组的工单"},
        "pending": {"等客户回复"},
        "solved": {"已解决的工单"},
        "spam": {"垃圾广告"},
        "mine": {"王主管的工单"},
    }
    for view, subjects in expected.items():
        page = client.get(f"/tickets/?view={view}").content.decode()
        assert set(_rows(page)) == subjects, view
        counts = client.get(f"/tickets/counts/?view={view}").content.decode()
        assert _count(counts, view) == str(len(subjects)), view
    page = client.get("/tickets/?view=all").content.decode()
    assert "垃圾广告" not in _rows(page) and len(_rows(page)) == 6


def test_an_agent_sees_their_own_and_their_groups_tickets(agent_li, inbox_of_li):
    client = login(agent_li)
    page = client.get("/tickets/").content.decode()
    assert "别组的工单" not in _rows(page)  # a group li does not work in
    assert set(_rows(client.get("/tickets/?view=mine").content.decode())) == {
        "李丽的工单",
        "等客户回复",
    }
    groups = client.get("/tickets/?view=groups").content.decode()
    assert set(_rows(groups)) == {"李丽的工单", "没人管的工单", "王主管的工单", "等客户回复"}
    counts = client.get("/tickets/counts/?view=groups").content.decode()
    assert _count(counts, "mine") == "2" and _count(counts, "unassigned") == "1"


def test_filters_narrow_the_view(agent_li, supervisor_wang, inbox_of_li):
    client = login(supervisor_wang)
    Ticket.objects.filter(subject="李丽的工单").update(priority="urgent")
    services.tag_ticket(
        acting_agent=acting(supervisor_wang),
        ticket=Ticket.objects.get(subject="没人管的工单"),
        names=["退款"],
    )

    def shown(query: str) -> set[str]:
        response = client.get(f"/tickets/?{query}")
        assert response.status_code == 200, query
        return set(_rows(response.content.decode()))

    assert shown("channel=chat") == {"别组的工单"}
    assert shown("priority=urgent") == {"李丽的工单"}
    assert shown("tag=退款") == {"没人管的工单"}
    assert shown(f"group={inbox_of_li.pk}&assignee=none") == {"没人管的工单"}
    assert shown(f"assignee={agent_li.pk}&status=all") == {
        "李丽的工单",
        "等客户回复",
        "已解决的工单",
    }
    assert shown("view=mine&status=solved") == set()
    assert shown("status=solved") == {"已解决的工单"}


def test_a_filter_that_is_not_a_choice_is_a_form_error_not_a_crash(
    supervisor_wang, globex_agent_li, inbox_of_li
):
    client = login(supervisor_wang)
    for query in (
        "view=nope",
        "status=gone",
        "channel=fax",
        f"assignee={globex_agent_li.pk}9",
        "group=abc",
        "older=not-a-cursor",
        "newer=99999999999999999999.1",
    ):
        response = client.get(f"/tickets/?{query}")
        assert response.status_code == 400, query
        assert 'class="errorlist"' in response.content.decode(), query
        assert len(_rows(response.content.decode())) == 5, query  # the view, unfiltered


def test_pages_go_older_and_newer_by_cursor(supervisor_wang, in_acme, monkeypatch):
    monkeypatch.setattr(inbox, "PAGE_SIZE", 3)
    start = timezone.now() - timedelta(hours=1)
    for n in range(7):
        _ticket(f"工单{n}", updated_at=start + timedelta(minutes=n))
    client = login(supervisor_wang)
    first = client.get("/tickets/?view=all").content.decode()
    assert _rows(first) == ["工单6", "工单5", "工单4"]
    assert 'data-pager="newer"' not in first
    older = re.search(r'href="\?([^"]*)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(f"/tickets/?{older}").content.decode()
    assert _rows(second) == ["工单3", "工单2", "工单1"]
    older = re.search(r'href="\?([^"]*)" rel="next"', second).group(1).replace("&amp;", "&")
    last = client.get(f"/tickets/?{older}").content.decode()
    assert _rows(last) == ["工单0"] and 'rel="next"' not in last
    newer = re.search(r'href="\?([^"]*)" rel="prev"', last).group(1).replace("&amp;", "&")
    back = client.get(f"/tickets/?{newer}").content.decode()
    assert _rows(back) == ["工单3", "工单2", "工单1"]


def test_tickets_changed_at_the_same_moment_are_neither_lost_nor_repeated(
    supervisor_wang, in_acme, monkeypatch
):
    monkeypatch.setattr(inbox, "PAGE_SIZE", 2)
    moment = timezone.now() - timedelta(minutes=5)
    for n in range(5):
        _ticket(f"同时{n}", updated_at=moment)
    client = login(supervisor_wang)
    seen, query = [], "view=all"
    for _ in range(5):
        page = client.get(f"/tickets/?{query}").content.decode()
        seen += _rows(page)
        found = re.search(r'href="\?([^"]*)" rel="next"', page)
        if not found:
            break
        query = found.group(1).replace("&amp;", "&")
    assert sorted(seen) == [f"同时{n}" for n in range(5)]


def test_counts_stop_at_the_cap(supervisor_wang, in_acme, monkeypatch):
    monkeypatch.setattr(inbox, "COUNT_CAP", 3)
    for n in range(5):
        _ticket(f"工单{n}")
    page = login(supervisor_wang).get("/tickets/counts/").content.decode()
    assert _count(page, "open") == "3+" and _count(page, "spam") == "0"


def test_the_list_answers_without_counting_and_loads_the_counts_after(supervisor_wang, inbox_of_li):
    client = login(supervisor_wang)
    page = client.get("/tickets/?view=pending").content.decode()
    assert _count(page, "pending") == ""  # not counted with the page...
    assert 'data-live-src="/tickets/counts/?view=pending" data-live-load' in page  # ...but after
    counts = client.get("/tickets/counts/?view=pending").content.decode()
    assert _count(counts, "pending") == "1"
    assert 'aria-current="page" data-view="pending"' in counts
    assert "data-live-load" not in counts  # loaded once, then on ticket events
    assert client.get("/tickets/counts/?view=nonsense").status_code == 200  # the default view


def test_the_list_keeps_its_hooks_for_keys_live_updates_and_merging(agent_li, inbox_of_li):
    page = login(agent_li).get("/tickets/").content.decode()
    assert page.count("data-nav-row") == len(_rows(page)) == 4
    assert 'data-live-section="inbox-tickets"' in page and "ticket.created" in page
    assert '<button type="submit" name="action" value="merge">' in page


@pytest.mark.parametrize("view", list(inbox.VIEWS))
def test_each_view_costs_the_same_queries_for_12_or_60_tickets(
    view, supervisor_wang, agent_li, in_acme, django_assert_max_num_queries
):
    group = Group.objects.create(name="After-sales 售后")
    GroupMember.objects.create(group=group, user=supervisor_wang)

    def add(count: int) -> None:
        for n in range(count):
            ticket = _ticket(
                f"工单{n}",
                assignee=(supervisor_wang, agent_li, None)[n % 3],
                group=group,
                status=("open", "pending", "solved", "new")[n % 4],
                ignored_at=timezone.now() if n % 5 == 0 else None,
            )
            if view == "call_backs":  # the view of call-backs due: one on each ticket
                CallBack.objects.create(
                    ticket=ticket,
                    agent=supervisor_wang,
                    created_by=supervisor_wang,
                    number="+8613800138000",
                    due_at=timezone.now(),
                )

    add(12)  # every kind of row at least once: assigned or not, each status, spam
    client = login(supervisor_wang)
    client.get(f"/tickets/?view={view}")  # the session and the merchant are read once
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"/tickets/?view={view}&q=工单").status_code == 200
    add(48)
    with django_assert_max_num_queries(len(few)):
        page = client.get(f"/tickets/?view={view}&q=工单").content.decode()
    assert _rows(page)
