"""The supervisor's figures over REST: supervisors and up (with a session or an API key) read
them, agents get 403, bad parameters 400 with the reason, and only the caller's merchant's data
is ever counted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from escalation.escalations import policy
from escalation.models import Escalation, RemedyKind, Trigger
from helpdesk import tenancy
from helpdesk.models import ApiKey, ApiScope
from tests.conftest import login
from tests.escalation import metrics_data as data
from tickets.models import Order, OrderLine

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "/api/v1/metrics/escalation-rate/",
    "/api/v1/metrics/agents/",
    "/api/v1/metrics/remedy-spend/",
    "/api/v1/metrics/root-causes/",
    "/api/v1/escalations/",
]


def key_client(tenant, user, scopes=(ApiScope.READ,)) -> APIClient:
    _, token = ApiKey.issue(tenant=tenant, acting_user=user, name="test", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def acme_figures(tenant_acme, agent_li, supervisor_wang):
    """Acme: 40 complaint tickets this week, 2 escalated by agent li, one with a refund over
    the limit; a ¥80 refund granted; a complaint about a range hood order."""
    with tenancy.activate(tenant_acme):
        data.reason_codes()
        made = data.tickets(40, escalated=0, assignee=agent_li)
        data.escalate(made[0], Trigger.MANUAL, raised_by=agent_li, agent=agent_li)
        data.over_limit(made[1], "150", by=agent_li)
        data.remedy(made[2], "80", by=agent_li)
        order = Order.objects.create(
            customer=data.customer(), number="SO-1", currency="CNY", placed_at=made[0].created_at
        )
        OrderLine.objects.create(
            order=order,
            sku="HOOD-1",
            product_name="Range hood",
            supplier="Fotile",
            unit_price_amount=Decimal("1999"),
        )
        data.tickets(1, order=order)
        return made


@pytest.fixture
def globex_figures(tenant_globex, globex_agent_li):
    """Globex: everything escalated, a refund, an open escalation: never in acme's figures."""
    with tenancy.activate(tenant_globex):
        data.reason_codes()
        made = data.tickets(50, escalated=50, assignee=globex_agent_li)
        data.escalate(made[0], Trigger.MANUAL)
        data.remedy(made[0], "999", by=globex_agent_li, currency="USD")
        return made


@pytest.mark.parametrize("url", ENDPOINTS)
def test_agents_are_refused(url, tenant_acme, agent_li):
    response = login(agent_li).get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert key_client(tenant_acme, agent_li).get(url).status_code == 403


@pytest.mark.parametrize("url", ENDPOINTS)
def test_supervisors_admins_and_owners_may_read(url, supervisor_wang, admin_zhao, owner_chen):
    for person in (supervisor_wang, admin_zhao, owner_chen):
        assert login(person).get(url).status_code == 200, (url, person)


def test_signed_out_callers_are_refused(tenant_acme):
    assert APIClient().get(ENDPOINTS[0]).status_code in (401, 403)


@pytest.mark.parametrize(
    ("url", "query"),
    [
        ("/api/v1/metrics/escalation-rate/", "days=0"),
        ("/api/v1/metrics/escalation-rate/", "days=seven"),
        ("/api/v1/metrics/escalation-rate/", "days=401"),
        ("/api/v1/metrics/agents/", "days=1.5"),
        ("/api/v1/metrics/agents/", "days=-3"),
        ("/api/v1/metrics/root-causes/", "days=%C2%B2"),  # a superscript two
        ("/api/v1/metrics/remedy-spend/", "month=2026-13"),
        ("/api/v1/metrics/remedy-spend/", "month=March"),
        ("/api/v1/metrics/remedy-spend/", "month=2026-3"),
        ("/api/v1/escalations/", "state=stuck"),
    ],
)
def test_bad_parameters_are_400_with_the_reason(url, query, supervisor_wang):
    response = login(supervisor_wang).get(f"{url}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_input"
    assert body["extra"]["field"] == query.split("=")[0]
    assert body["message"]


def test_the_escalation_rate_with_its_series_and_groups(
    acme_figures, globex_figures, tenant_acme, supervisor_wang
):
    body = key_client(tenant_acme, supervisor_wang).get(ENDPOINTS[0] + "?days=7").json()

    assert body["days"] == 7
    assert body["rate"] == {
        "days": 7,
        "complaints": 41,
        "escalated": 2,
        "rate": "4.88",
        "threshold": "3.00",
        "min_complaints": 30,
        "above": True,
    }
    assert body["rate_30_days"]["complaints"] == 41
    assert len(body["series"]) == 30
    # Each point is the 7 days ending that day; the tickets are a day old.
    assert [point["complaints"] for point in body["series"][-2:]] == [41, 41]
    assert body["series"][-1]["rate"] == "4.88"
    assert body["groups"] == [
        {"group": None, "name": "", "complaints": 41, "escalated": 2, "rate": "4.88"}
    ]


def test_the_agent_table(acme_figures, globex_figures, agent_li, supervisor_wang):
    body = login(supervisor_wang).get(ENDPOINTS[1] + "?days=30").json()
    rows = {row["username"]: row for row in body["agents"]}
    assert set(rows) == {"li.acme", "wang.acme"}
    li = rows["li.acme"]
    assert (li["handled"], li["complaints"], li["escalated"], li["rate"]) == (40, 40, 2, "5.00")
    assert li["remedies"] == [
        {
            "kind": "refund",
            "kind_label": "Refund",
            "count": 1,
            "amount": "80.00",
            "currency": "CNY",
        }
    ]
    assert rows["wang.acme"]["rate"] is None


def test_the_remedy_spend_of_a_month(acme_figures, globex_figures, tenant_acme, supervisor_wang):
    with tenancy.activate(tenant_acme):
        rules = policy()
        rules.monthly_budget_amount = Decimal("400")
        rules.budget_currency = "CNY"
        rules.save()
    client = login(supervisor_wang)

    body = client.get(ENDPOINTS[2]).json()
    assert body["currencies"] == [
        {
            "currency": "CNY",
            "spent": "80.00",
            "count": 1,
            "budget": "400.00",
            "share": "20.00",
            "by_kind": [{"kind": "refund", "kind_label": "Refund", "count": 1, "amount": "80.00"}],
        }
    ]
    earlier = client.get(ENDPOINTS[2] + "?month=2020-02").json()
    assert earlier["month"] == "2020-02"
    assert earlier["currencies"][0]["spent"] == "0.00"


def test_root_causes_with_defect_rates(acme_figures, globex_figures, supervisor_wang):
    body = login(supervisor_wang).get(ENDPOINTS[3] + "?days=30").json()
    assert [(r["key"], r["complaints"], r["previous"]) for r in body["reasons"]] == [
        ("damaged", 41, 0)
    ]
    assert [(r["key"], r["complaints"]) for r in body["products"]] == [("Range hood", 1)]
    assert [(r["key"], r["complaints"]) for r in body["suppliers"]] == [("Fotile", 1)]
    assert body["defect_rates"] == [
        {
            "dimension": "sku",
            "key": "HOOD-1",
            "label": "HOOD-1 Range hood",
            "orders": 1,
            "complaint_orders": 1,
            "rate": "100.00",
            "above": False,
        },
        {
            "dimension": "supplier",
            "key": "Fotile",
            "label": "Fotile",
            "orders": 1,
            "complaint_orders": 1,
            "rate": "100.00",
            "above": False,
        },
    ]


def test_the_escalation_queue_lists_this_merchants_open_escalations(
    acme_figures, globex_figures, tenant_acme, supervisor_wang
):
    with tenancy.activate(tenant_acme):
        resolved = Escalation.objects.get(trigger=Trigger.MANUAL)
        Escalation.objects.filter(pk=resolved.pk).update(state=Escalation.State.RESOLVED)
    client = login(supervisor_wang)

    queue = client.get(ENDPOINTS[4] + "?state=open").json()["results"]
    assert [(e["ticket"], e["trigger"], e["state"]) for e in queue] == [
        (acme_figures[1].number, "over_limit", "open")
    ]
    assert queue[0]["raised_by"] == "li.acme"
    assert queue[0]["approval_request"] is not None
    assert queue[0]["trigger_label"] == "Remedy above the agent's limit"

    everything = client.get(ENDPOINTS[4]).json()["results"]
    assert len(everything) == 2
    done = client.get(ENDPOINTS[4] + "?state=resolved").json()["results"]
    assert [e["id"] for e in done] == [resolved.pk]


def test_globex_figures_are_globexs_own(
    acme_figures, globex_figures, tenant_globex, globex_agent_li
):
    from tests.factories import MembershipFactory, UserFactory

    boss = UserFactory(username="boss.globex")
    MembershipFactory(tenant=tenant_globex, user=boss, role="owner")
    client = key_client(tenant_globex, boss)

    rate = client.get(ENDPOINTS[0]).json()["rate"]
    assert (rate["complaints"], rate["escalated"]) == (50, 50)
    spend = client.get(ENDPOINTS[2]).json()["currencies"]
    assert [(row["currency"], row["spent"]) for row in spend] == [("USD", "999.00")]
    queue = client.get(ENDPOINTS[4]).json()["results"]
    assert [e["ticket"] for e in queue] == [globex_figures[0].number]
    assert client.get(ENDPOINTS[3]).json()["products"] == []


def test_a_gift_over_the_limit_is_counted_in_the_queue_not_the_spend(
    acme_figures, tenant_acme, agent_li, supervisor_wang
):
    with tenancy.activate(tenant_acme):
        old = data.tickets(1, ago=timedelta(days=3))[0]
        data.over_limit(old, "20", by=agent_li, kind=RemedyKind.GIFT)
    body = login(supervisor_wang).get(ENDPOINTS[2]).json()
    assert [k["kind"] for k in body["currencies"][0]["by_kind"]] == ["refund"]
    queue = login(supervisor_wang).get(ENDPOINTS[4] + "?state=open").json()["results"]
    assert len(queue) == 3
