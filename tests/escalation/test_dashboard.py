"""The supervisor dashboard: what waits for a supervisor with its forms, the escalation rate and
its chart, agents, spend against the budget and root causes, for supervisors only, in a fixed
number of queries; and the live events that keep it (and an agent's ticket page) current."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from escalation import escalations
from escalation.escalations import policy
from escalation.models import ApprovalRequest, Escalation, SupervisorAlert, Trigger
from helpdesk import realtime, tenancy
from helpdesk.models import Role
from tests.conftest import _member, acting, login
from tests.escalation import metrics_data as data
from tests.factories import OrderFactory, OrderLineFactory
from tests.tickets.test_live_events import communicator_for
from tickets.models import Group, Ticket

pytestmark = pytest.mark.django_db

PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}
DASHBOARD = "/supervisor/"


def dashboard(client) -> str:
    response = client.get(DASHBOARD, **PAGE)
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, name: str) -> str:
    """The HTML of the live section ``name``, up to the next section."""
    start = page.index(f'data-live-section="{name}"')
    end = page.find("data-live-section=", start + 1)
    return page[start : end if end != -1 else len(page)]


def chart_of(page: str) -> dict:
    found = re.search(r'<script id="rate-chart-data" type="application/json">(.*?)</script>', page)
    assert found, "the chart's data is not on the page"
    return json.loads(found.group(1))


def ask_over_limit(agent, ticket: Ticket, amount: str = "150") -> ApprovalRequest:
    """The agent's refund past their limit, as the ticket page's grant form sends it."""
    response = login(agent).post(
        f"/tickets/{ticket.number}/remedies/",
        {"kind": "refund", "amount": amount, "note": "漏油严重"},
        HTTP_REFERER=f"http://testserver/tickets/{ticket.number}/",
        **PAGE,
    )
    assert response.status_code == 302
    with tenancy.activate(ticket.tenant):
        return ApprovalRequest.objects.get(ticket=ticket, state=ApprovalRequest.State.PENDING)


@pytest.fixture
def codes(tenant_acme):
    with tenancy.activate(tenant_acme):
        data.reason_codes()


# --- who sees it -------------------------------------------------------------------------------


def test_agents_get_the_403_page_and_no_link_to_it(agent_li, supervisor_wang):
    agent = login(agent_li)
    assert agent.get(DASHBOARD, **PAGE).status_code == 403
    assert f'href="{DASHBOARD}"' not in agent.get("/tickets/").content.decode()
    supervisor = login(supervisor_wang)
    assert f'href="{DASHBOARD}"' in supervisor.get("/tickets/").content.decode()
    assert reverse("supervisor:dashboard") == DASHBOARD


def test_admins_and_owners_see_it_too(admin_zhao, owner_chen):
    for person in (admin_zhao, owner_chen):
        assert "Supervisor dashboard" in dashboard(login(person))


def test_signed_out_people_are_sent_to_sign_in(tenant_acme):
    from django.test import Client

    response = Client().get(DASHBOARD, **PAGE)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_page_reads_in_chinese(supervisor_wang):
    page = login(supervisor_wang, language="zh-hans").get(DASHBOARD, **PAGE).content.decode()
    assert "主管看板" in page
    assert "升级率" in page
    assert "Supervisor dashboard" not in page


# --- the queue ---------------------------------------------------------------------------------


def test_the_queue_lists_requests_to_decide_and_other_open_escalations_with_their_forms(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, agents_refund_limit
):
    approval = ask_over_limit(agent_li, acme_ticket)
    with tenancy.activate(tenant_acme):
        other = data.tickets(1, reason="")[0]
        by_hand = escalations.escalate_by_hand(
            acting_agent=acting(agent_li), ticket=other, reason="客户情绪激动"
        )
    queue = section(dashboard(login(supervisor_wang)), "queue")

    row = queue[queue.index(f'data-approval="{approval.pk}"') :]
    row = row[: row.index("</tr>")]
    assert f"#{acme_ticket.number}" in row and "CN¥150.00" in row and "li.acme" in row
    decide_url = reverse("escalation:decide", args=[approval.pk])
    assert row.count(f'action="{decide_url}"') == 3
    for decision in ("approve", "counter", "deny"):
        assert f'name="decision" value="{decision}"' in row
    assert row.count(f'name="next" value="{DASHBOARD}"') == 3

    escalated = queue[queue.index('id="dashboard-escalations"') :]
    assert f'data-escalation="{by_hand.pk}"' in escalated
    assert "客户情绪激动" in escalated and "Escalated by an agent" in escalated
    assert reverse("escalation:resolve_escalation", args=[by_hand.pk]) in escalated
    # The over-limit escalation is settled by deciding its request: it is not listed twice.
    assert f"#{acme_ticket.number}" not in escalated


def test_deciding_from_the_dashboard_comes_back_to_it(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, agents_refund_limit
):
    approval = ask_over_limit(agent_li, acme_ticket, amount="180.50")
    supervisor = login(supervisor_wang)
    response = supervisor.post(
        reverse("escalation:decide", args=[approval.pk]),
        {"decision": "deny", "reason": "已经部分退款", "next": DASHBOARD},
        **PAGE,
    )
    assert (response.status_code, response["Location"]) == (302, DASHBOARD)
    page = supervisor.get(DASHBOARD, **PAGE).content.decode()
    assert "Denied." in page
    assert f'data-approval="{approval.pk}"' not in section(page, "queue")


def test_a_next_pointing_elsewhere_goes_to_the_approvals_page(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, agents_refund_limit
):
    approval = ask_over_limit(agent_li, acme_ticket)
    response = login(supervisor_wang).post(
        reverse("escalation:decide", args=[approval.pk]),
        {"decision": "deny", "reason": "不符合政策", "next": "https://evil.example/phish"},
        **PAGE,
    )
    assert response["Location"] == reverse("escalation:approvals")


def test_resolving_from_the_dashboard_clears_it_from_the_queue(
    tenant_acme, agent_li, supervisor_wang, codes
):
    with tenancy.activate(tenant_acme):
        ticket = data.tickets(1)[0]
        escalation = escalations.escalate_by_hand(
            acting_agent=acting(agent_li), ticket=ticket, reason="客户要投诉"
        )
    supervisor = login(supervisor_wang)
    response = supervisor.post(
        reverse("escalation:resolve_escalation", args=[escalation.pk]),
        {"resolution": "已电话安抚", "next": DASHBOARD},
        **PAGE,
    )
    assert response["Location"] == DASHBOARD
    assert f'data-escalation="{escalation.pk}"' not in section(dashboard(supervisor), "queue")


# --- the figures -------------------------------------------------------------------------------


def test_the_rate_figures_and_chart_count_escalated_complaint_tickets(
    tenant_acme, supervisor_wang, codes
):
    with tenancy.activate(tenant_acme):
        data.tickets(3, escalated=1, ago=timedelta(hours=2))
        data.tickets(1, reason="late", ago=timedelta(days=20))
        data.tickets(5, reason="question", escalated=5)  # not complaints
    page = dashboard(login(supervisor_wang))

    week = page[page.index('data-rate-figure="week"') :]
    week = week[: week.index("</div>")]
    assert "33.33%" in week and "1 of 3 complaint tickets escalated" in week
    assert 'data-part="above" hidden' in week  # 3 complaints are fewer than the 30 it takes
    month = page[page.index('data-rate-figure="month"') :]
    assert "1 of 4 complaint tickets escalated" in month[: month.index("</div>")]

    chart = chart_of(page)
    assert chart["threshold"] == "3.00"
    assert len(chart["series"]) == 30
    assert chart["series"][-1] == {
        "date": chart["series"][-1]["date"],
        "complaints": 3,
        "escalated": 1,
        "rate": "33.33",
    }
    # Without JavaScript the same figures are a table.
    assert "<td>3</td><td>1</td><td>33.33%</td>" in page


def test_the_rate_is_flagged_above_target_past_the_threshold_with_enough_complaints(
    tenant_acme, supervisor_wang, codes
):
    with tenancy.activate(tenant_acme):
        data.tickets(30, escalated=2)
    page = dashboard(login(supervisor_wang))
    week = page[page.index('data-rate-figure="week"') :]
    week = week[: week.index("</div>")]
    assert 'data-above="true"' in week and "6.67%" in week
    assert 'data-part="above" hidden' not in week


def test_rates_per_group(tenant_acme, supervisor_wang, codes):
    with tenancy.activate(tenant_acme):
        after_sales = Group.objects.create(name="售后")
        data.tickets(4, escalated=1, group=after_sales)
        data.tickets(2)
    rows = section(dashboard(login(supervisor_wang)), "group-rates")
    after = rows[rows.index(f'data-group="{after_sales.pk}"') :]
    assert "<td>售后</td><td>4</td><td>1</td><td>25.00%</td>" in after
    assert "<td>No group</td><td>2</td><td>0</td><td>0.00%</td>" in rows


def test_the_agent_table_shows_each_agents_month(tenant_acme, agent_li, supervisor_wang, codes):
    with tenancy.activate(tenant_acme):
        made = data.tickets(4, escalated=1, assignee=agent_li)
        data.remedy(made[0], "45.50", by=agent_li)
    table = section(dashboard(login(supervisor_wang)), "agents")
    row = table[table.index(f'data-agent="{agent_li.pk}"') :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
    assert cells[1:6] == ["4", "0", "4", "1", "25.00%"]
    assert "Refund × 1: CN¥45.50" in cells[6]


def test_remedy_spend_is_shown_against_the_monthly_budget(
    tenant_acme, agent_li, supervisor_wang, codes
):
    with tenancy.activate(tenant_acme):
        rules = policy()
        rules.monthly_budget_amount, rules.budget_currency = Decimal("1000"), "CNY"
        rules.save()
        ticket = data.tickets(1)[0]
        data.remedy(ticket, "250", by=agent_li)
        data.remedy(ticket, "50", by=agent_li, kind="gift")
    spend = section(dashboard(login(supervisor_wang)), "spend")
    assert "CN¥300.00" in spend and "CN¥1,000.00" in spend and "(30.00%)" in spend
    assert '<meter class="budget"' in spend and 'value="30.00"' in spend
    assert "Refund × 1: CN¥250.00" in spend
    assert "Over budget" not in spend


def test_root_causes_show_trends_and_defect_rates_flag_those_above_the_limit(
    tenant_acme, supervisor_wang, codes
):
    with tenancy.activate(tenant_acme):
        buyer = data.customer()
        for number in range(20):
            order = OrderFactory(customer=buyer, number=f"SO-D{number}")
            OrderLineFactory(order=order, sku="RH-900", product_name="吸油烟机", supplier="华帅")
            if number < 3:
                data.tickets(1, order=order, customer=buyer)
        data.tickets(1, reason="late", ago=timedelta(days=40))
    page = section(dashboard(login(supervisor_wang)), "root-causes")
    assert "Arrived damaged 到货破损" in page
    assert '<td class="trend up"><span aria-label="more than before">▲</span> +3</td>' in page
    assert '<span aria-label="fewer than before">▼</span> -1' in page
    defects = page[page.index('id="defect-rates"') :]
    sku = defects[defects.index('data-key="RH-900"') :]
    sku = sku[: sku.index("</tr>")]
    assert 'class="above"' in sku and "15.00%" in sku and "Above the limit" in sku


def test_only_active_alerts_are_shown_with_their_what_if(tenant_acme, supervisor_wang):
    details = {
        "days": 7,
        "complaints": 40,
        "escalated": 4,
        "rate": "10.00",
        "threshold": "3.00",
        "min_complaints": 30,
        "above": True,
        "drivers": {"agents": [{"key": 1, "label": "小李", "escalated": 3}]},
        "what_if": [
            {
                "kind": "refund",
                "kind_label": "Refund",
                "currency": "CNY",
                "candidates": [
                    {
                        "limit": "150.00",
                        "absorbed": 3,
                        "cost": "420.00",
                        "avoided": 3,
                        "rate": "2.50",
                    }
                ],
            }
        ],
    }
    with tenancy.activate(tenant_acme):
        SupervisorAlert.objects.create(
            kind=SupervisorAlert.Kind.ESCALATION_RATE, title="rate", details=details
        )
        SupervisorAlert.objects.create(
            kind=SupervisorAlert.Kind.DEFECT_RATE,
            key="sku:OLD-1",
            title="An old defect alert",
            cleared_at=timezone.now(),
        )
    alerts = section(dashboard(login(supervisor_wang)), "alerts")
    assert "Escalation rate 10.00% is above the 3% target" in alerts
    assert "4 of 40 complaint tickets" in alerts
    assert "小李 (3)" in alerts
    assert (
        "A Refund limit of CN¥150.00 would have absorbed 3 requests for CN¥420.00, "
        "avoided 3 escalations and left the rate at 2.50%." in alerts
    )
    assert "An old defect alert" not in alerts


# --- merchants ---------------------------------------------------------------------------------


def test_another_merchants_supervisor_sees_nothing_of_acme(
    tenant_acme, tenant_globex, agent_li, acme_ticket, agents_refund_limit, codes
):
    approval = ask_over_limit(agent_li, acme_ticket)
    with tenancy.activate(tenant_acme):
        data.tickets(5, escalated=2)
    globex_wang = _member(tenant_globex, "wang.globex", Role.SUPERVISOR).user
    page = dashboard(login(globex_wang))
    assert f'data-approval="{approval.pk}"' not in page
    assert "li.acme" not in page and "油烟机漏油" not in page
    assert "Nothing waits for approval." in page
    assert all(point["complaints"] == 0 for point in chart_of(page)["series"])
    response = login(globex_wang).post(
        reverse("escalation:decide", args=[approval.pk]),
        {"decision": "approve", "next": DASHBOARD},
        **PAGE,
    )
    assert response.status_code == 404


# --- cost --------------------------------------------------------------------------------------


def fill(tenant, agent, rows: int) -> None:
    """``rows`` of everything the page lists: groups, agents, complaint tickets (some
    escalated, by hand and past a limit), pending requests, remedies, orders with lines."""
    with tenancy.activate(tenant):
        rules = policy()
        rules.monthly_budget_amount, rules.budget_currency = Decimal("5000"), "CNY"
        rules.save()
        buyer = data.customer()
        for index in range(rows):
            group = Group.objects.create(name=f"组 {rows}-{index}")
            person = data.member(f"agent{index}.{rows}")
            order = OrderFactory(customer=buyer)
            OrderLineFactory(order=order, sku=f"SKU{index}", supplier=f"供应商{index}")
            made = data.tickets(
                3, escalated=1, group=group, assignee=person, order=order, customer=buyer
            )
            data.escalate(made[0], reason="客户要求")
            data.over_limit(made[1], "150", by=agent)
            ApprovalRequest.objects.create(
                ticket=made[2], requested_by=person, kind="refund", amount="120", currency="CNY"
            )
            data.escalate(made[2], Trigger.CUSTOMER_REQUEST, agent=person, group=group)
            data.remedy(made[0], "30", by=person)
            SupervisorAlert.objects.create(
                kind=SupervisorAlert.Kind.DEFECT_RATE,
                key=f"sku:{rows}-{index}",
                title=f"SKU{index}",
            )


def test_the_page_costs_the_same_queries_with_many_rows(
    tenant_acme, agent_li, supervisor_wang, codes, django_assert_max_num_queries
):
    client = login(supervisor_wang)
    fill(tenant_acme, agent_li, 2)
    with CaptureQueriesContext(connection) as few:
        page = dashboard(client)
    assert page.count("data-approval=") == 2 and page.count("data-escalation=") == 6

    fill(tenant_acme, agent_li, 12)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = dashboard(client)
    assert page.count("data-approval=") == 14 and page.count("data-escalation=") == 42


def test_a_long_queue_shows_its_oldest_and_says_how_many_wait(
    tenant_acme, agent_li, supervisor_wang, codes, monkeypatch
):
    from escalation import dashboard_views

    monkeypatch.setattr(dashboard_views, "QUEUE_SHOWN", 5)
    fill(tenant_acme, agent_li, 6)
    page = dashboard(login(supervisor_wang))
    assert page.count("data-approval=") == 5 and page.count("data-escalation=") == 5
    assert "The oldest 5 of 6 requests" in page
    assert "The oldest 5 of 18 open escalations." in page


def test_the_month_sections_are_kept_a_minute_per_merchant(
    tenant_acme, tenant_globex, agent_li, supervisor_wang, codes, settings
):
    settings.HELPDESK_DASHBOARD_CACHE_SECONDS = 60
    fill(tenant_acme, agent_li, 1)
    first = dashboard(login(supervisor_wang))
    # (Supplier names appear only in the root causes; SKUs are alert titles too.)
    assert "供应商0" in first and "Figures as of" in first
    fill(tenant_acme, agent_li, 2)
    kept = dashboard(login(supervisor_wang))
    # The queue is live; the month's root causes are the ones counted a moment ago.
    assert kept.count("data-approval=") == 3 and "供应商1" not in kept

    globex_page = dashboard(login(_member(tenant_globex, "globex-boss", Role.SUPERVISOR).user))
    assert "供应商0" not in globex_page and "agent0.1" not in globex_page

    settings.HELPDESK_DASHBOARD_CACHE_SECONDS = 0
    assert "供应商1" in dashboard(login(supervisor_wang))


# --- live --------------------------------------------------------------------------------------


def test_the_chart_counts_today_live_and_keeps_the_days_before_a_minute(
    tenant_acme, supervisor_wang, codes, settings
):
    settings.HELPDESK_DASHBOARD_CACHE_SECONDS = 60
    with tenancy.activate(tenant_acme):
        data.tickets(2, escalated=0, ago=timedelta(days=3))
    client = login(supervisor_wang)
    assert chart_of(dashboard(client))["series"][-1]["complaints"] == 2

    with tenancy.activate(tenant_acme):
        data.tickets(1, escalated=1, ago=timedelta(seconds=1))  # today: live
        data.tickets(1, escalated=1, ago=timedelta(days=3))  # a closed day: kept a minute
    point = chart_of(dashboard(client))["series"][-1]
    assert (point["complaints"], point["escalated"]) == (3, 1)
    # The rates beside the chart are counted on every view.
    week = dashboard(client).split('data-rate-figure="week"')[1].split("</div>")[0]
    assert "2 of 4 complaint tickets escalated" in week

    settings.HELPDESK_DASHBOARD_CACHE_SECONDS = 0
    point = chart_of(dashboard(client))["series"][-1]
    assert (point["complaints"], point["escalated"]) == (4, 2)


def test_sections_say_which_events_refresh_them(supervisor_wang, agent_li, acme_ticket):
    page = dashboard(login(supervisor_wang))
    queue = re.search(r'data-live-section="queue" data-live-events="([^"]+)"', page)
    assert {"approval.requested", "approval.decided", "escalation.raised"} <= set(
        queue.group(1).split()
    )
    assert 'data-live-section="alerts" data-live-events="alert.raised' in page
    assert "js/live-sections.js" in page and "vendor/chart.js/chart.umd.min.js" in page
    ticket_page = login(agent_li).get(f"/tickets/{acme_ticket.number}/").content.decode()
    outcomes = re.search(r'<div class="remedy-outcomes"[^>]*>', ticket_page).group(0)
    assert f'data-live-ticket="{acme_ticket.number}"' in outcomes
    assert "approval.decided" in outcomes


async def events_heard(socket, count: int) -> list[str]:
    """The next ``count`` events the socket passes on, other than people's presence."""
    heard: list[str] = []
    while len(heard) < count:
        event = (await socket.receive_json_from(timeout=5))["event"]
        if event != "agent.presence":
            heard.append(event)
    return heard


@pytest.mark.django_db(transaction=True)
def test_supervisor_events_reach_only_people_who_supervise(agent_li, supervisor_wang, tenant_acme):
    def publish() -> None:
        with transaction.atomic():
            realtime.publish_after_commit(
                tenant_acme.pk, "alert.raised", {"alert": 1, "title": "rate"}
            )
            realtime.publish_after_commit(
                tenant_acme.pk, "supervisor.approval.requested", {"approval_request": 2}
            )
            realtime.publish_after_commit(tenant_acme.pk, "ticket.created", {"ticket": 3})

    async def scenario() -> tuple[list[str], list[str]]:
        agent = communicator_for(agent_li)
        supervisor = communicator_for(supervisor_wang)
        assert (await agent.connect())[0]
        assert (await supervisor.connect())[0]
        await sync_to_async(publish)()
        heard_by_supervisor = await events_heard(supervisor, 3)
        heard_by_agent = await events_heard(agent, 1)
        assert await agent.receive_nothing(timeout=0.5)
        await agent.disconnect()
        await supervisor.disconnect()
        return heard_by_agent, heard_by_supervisor

    heard_by_agent, heard_by_supervisor = asyncio.run(scenario())
    assert heard_by_agent == ["ticket.created"]
    assert heard_by_supervisor == [
        "alert.raised",
        "supervisor.approval.requested",
        "ticket.created",
    ]


def test_escalations_are_counted_once_per_ticket(tenant_acme, agent_li, supervisor_wang, codes):
    """Two triggers on one ticket are two rows in the queue but one escalated ticket."""
    with tenancy.activate(tenant_acme):
        ticket = data.tickets(1)[0]
        escalations.escalate_by_hand(acting_agent=acting(agent_li), ticket=ticket, reason="一")
        escalations.escalate(ticket=ticket, trigger=Trigger.REPEAT_CONTACT, reason="三次来电")
        assert Escalation.objects.count() == 2
    page = dashboard(login(supervisor_wang))
    assert section(page, "queue").count("data-escalation=") == 2
    assert chart_of(page)["series"][-1]["escalated"] == 1
