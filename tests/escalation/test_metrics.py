"""The supervisor's figures: the escalation rate and its series, agents, remedy spend, root
causes, defect rates and the what-if of higher limits, counted by the database in a fixed
number of queries."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from escalation import metrics
from escalation.escalations import policy
from escalation.models import Remedy, RemedyKind, RemedyLimit, Trigger
from escalation.whatif import candidate_limits
from helpdesk import tenancy
from helpdesk.models import Role
from tests.escalation import metrics_data as data
from tickets.models import Group, Order, OrderLine, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def codes(in_acme):
    data.reason_codes()


# --- the rate --------------------------------------------------------------------------------


def test_the_rate_counts_escalated_complaint_tickets_created_in_the_window(codes):
    data.tickets(10, reason="damaged", escalated=2)
    data.tickets(5, reason="late", escalated=1)
    data.tickets(20, reason="question", escalated=20)  # not complaints
    data.tickets(30, reason="damaged", escalated=30, ago=timedelta(days=8))  # before the window

    figures = metrics.escalation_rate(days=7)

    assert (figures.complaints, figures.escalated) == (15, 3)
    assert figures.rate == Decimal("20.00")
    assert figures.threshold == Decimal("3")
    assert figures.min_complaints == 30
    assert figures.above is False  # 15 complaints are fewer than the 30 it takes
    assert metrics.escalation_rate(days=30).complaints == 45


def test_the_rate_has_two_places_and_is_none_without_complaints(codes):
    assert metrics.escalation_rate().rate is None
    data.tickets(3, escalated=2)
    assert metrics.escalation_rate().rate == Decimal("66.67")


def test_above_means_strictly_above_the_threshold_with_enough_complaints(codes):
    data.tickets(100, escalated=3)
    at_threshold = metrics.escalation_rate()
    assert (at_threshold.rate, at_threshold.above) == (Decimal("3.00"), False)

    data.tickets(1, escalated=1)
    just_above = metrics.escalation_rate()
    assert just_above.rate == Decimal("3.96")  # 4 of 101
    assert just_above.above is True


def test_the_rate_narrows_to_a_group_or_an_agent(codes, agent_li):
    returns = Group.objects.create(name="Returns")
    data.tickets(4, escalated=1, group=returns)
    data.tickets(6, escalated=3, assignee=agent_li)

    assert metrics.escalation_rate(group=returns).rate == Decimal("25.00")
    assert metrics.escalation_rate(group=returns.pk).complaints == 4
    assert metrics.escalation_rate(agent=agent_li).rate == Decimal("50.00")
    by_group = {row["name"]: row for row in metrics.rate_by_group()}
    assert (by_group["Returns"]["complaints"], by_group["Returns"]["escalated"]) == (4, 1)
    assert (by_group[""]["complaints"], by_group[""]["escalated"]) == (6, 3)


def test_another_merchants_tickets_never_count(codes, tenant_globex, tenant_acme):
    data.tickets(10, escalated=1)
    with tenancy.activate(tenant_globex):
        data.reason_codes()
        data.tickets(50, escalated=50)
        data.tickets(7, reason="late", escalated=0)
        assert metrics.escalation_rate().complaints == 57

    figures = metrics.escalation_rate()
    assert (figures.complaints, figures.escalated) == (10, 1)
    assert sum(point["complaints"] for point in metrics.rate_series(days=1, window=7)) == 10
    assert [row["key"] for row in metrics.root_causes()["reasons"]] == ["damaged"]


def test_a_code_is_a_complaint_only_where_its_merchant_says_so(codes, tenant_acme, tenant_globex):
    with tenancy.activate(tenant_globex):
        from tickets.models import ReasonCode

        ReasonCode.objects.create(code="question", label="Question", is_complaint=True)
        ReasonCode.objects.create(code="damaged", label="Damaged", is_complaint=False)
        assert metrics.complaint_codes() == ["question"]
    assert metrics.complaint_codes() == ["damaged", "late"]


# --- the series ------------------------------------------------------------------------------


def test_the_series_is_a_rolling_rate_per_day_of_the_merchants_time_zone(codes, tenant_acme):
    assert tenant_acme.time_zone == "Asia/Shanghai"
    end = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    data.tickets(5, escalated=5, now=end, ago=end - datetime(2026, 3, 6, 2, tzinfo=UTC))
    data.tickets(2, escalated=1, now=end, ago=end - datetime(2026, 3, 7, 2, tzinfo=UTC))
    data.tickets(4, escalated=0, now=end, ago=end - datetime(2026, 3, 9, 4, tzinfo=UTC))
    # 17:00 UTC on the 9th is 01:00 on the 10th in Shanghai.
    data.tickets(2, escalated=2, now=end, ago=end - datetime(2026, 3, 9, 17, tzinfo=UTC))

    series = metrics.rate_series(days=3, window=2, end=end)

    assert series == [
        {"date": "2026-03-08", "complaints": 2, "escalated": 1, "rate": "50.00"},
        {"date": "2026-03-09", "complaints": 4, "escalated": 0, "rate": "0.00"},
        {"date": "2026-03-10", "complaints": 6, "escalated": 2, "rate": "33.33"},
    ]


def test_a_day_without_complaints_has_no_rate(codes):
    series = metrics.rate_series(days=30)
    assert len(series) == 30
    assert series[-1]["date"] == timezone.now().astimezone(metrics.time_zone()).date().isoformat()
    assert {point["rate"] for point in series} == {None}


# --- agents ----------------------------------------------------------------------------------


def test_the_agent_table_counts_each_members_tickets_and_remedies(codes, agent_li, supervisor_wang):
    zhou = data.member("zhou.acme", display_name="周敏")
    mine = data.tickets(5, escalated=2, assignee=agent_li)
    data.tickets(3, reason="question", assignee=agent_li, status=Ticket.Status.SOLVED)
    data.tickets(1, reason="question", escalated=1, assignee=agent_li, status=Ticket.Status.CLOSED)
    data.tickets(4, escalated=4, assignee=agent_li, ago=timedelta(days=40))  # too old
    data.remedy(mine[0], "50", by=agent_li)
    data.remedy(mine[1], "30.50", by=agent_li)
    data.remedy(mine[2], "10", by=agent_li, kind=RemedyKind.GIFT)
    data.remedy(mine[3], "5", by=agent_li, currency="USD")
    old = data.remedy(mine[4], "999", by=agent_li)
    Remedy.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    rows = {row.user.pk: row for row in metrics.agent_table(days=30)}

    li = rows[agent_li.pk]
    assert (li.handled, li.solved_without_escalation, li.complaints, li.escalated) == (9, 3, 5, 2)
    assert li.rate == Decimal("40.00")
    assert [(r["kind"], r["count"], r["amount"], r["currency"]) for r in li.remedies] == [
        ("gift", 1, Decimal("10"), "CNY"),
        ("refund", 2, Decimal("80.50"), "CNY"),
        ("refund", 1, Decimal("5"), "USD"),
    ]
    assert li.remedies[0]["kind_label"] == "Gift or goodwill credit"
    assert rows[zhou.pk].name == "周敏"
    assert (rows[zhou.pk].handled, rows[zhou.pk].rate, rows[zhou.pk].remedies) == (0, None, [])
    assert rows[supervisor_wang.pk].role == Role.SUPERVISOR


def test_the_agent_table_lists_only_this_merchants_members(
    codes, agent_li, globex_agent_li, tenant_globex
):
    with tenancy.activate(tenant_globex):
        data.reason_codes()
        data.tickets(3, escalated=3, assignee=globex_agent_li)
    rows = metrics.agent_table()
    assert [row.user.pk for row in rows] == [agent_li.pk]
    assert rows[0].handled == 0


# --- remedy spend ----------------------------------------------------------------------------


def test_the_spend_of_a_month_is_counted_in_the_merchants_time_and_set_against_the_budget(
    codes, agent_li
):
    rules = policy()
    rules.monthly_budget_amount = Decimal("1000")
    rules.budget_currency = "CNY"
    rules.save()
    ticket = data.tickets(1)[0]
    dated = {
        # 00:30 on 1 March in Shanghai: March.
        datetime(2026, 2, 28, 16, 30, tzinfo=UTC): ("100", "CNY", RemedyKind.REFUND),
        datetime(2026, 3, 15, 9, 0, tzinfo=UTC): ("150", "CNY", RemedyKind.GIFT),
        datetime(2026, 3, 20, 9, 0, tzinfo=UTC): ("20", "USD", RemedyKind.REFUND),
        # 00:30 on 1 April in Shanghai: April.
        datetime(2026, 3, 31, 16, 30, tzinfo=UTC): ("700", "CNY", RemedyKind.REFUND),
    }
    for when, (amount, currency, kind) in dated.items():
        made = data.remedy(ticket, amount, by=agent_li, kind=kind, currency=currency)
        Remedy.objects.filter(pk=made.pk).update(created_at=when)

    spend = metrics.remedy_spend(month=date(2026, 3, 1))

    assert [(s["currency"], s["spent"], s["budget"], s["share"]) for s in spend] == [
        ("CNY", Decimal("250"), Decimal("1000"), Decimal("25.00")),
        ("USD", Decimal("20"), None, None),
    ]
    assert [(k["kind"], k["count"], k["amount"]) for k in spend[0]["by_kind"]] == [
        ("gift", 1, Decimal("150")),
        ("refund", 1, Decimal("100")),
    ]
    assert metrics.remedy_spend(month=date(2026, 4, 9))[0]["spent"] == Decimal("700")


def test_the_budget_currency_is_listed_with_nothing_spent(codes):
    rules = policy()
    rules.monthly_budget_amount = Decimal("500")
    rules.budget_currency = "CNY"
    rules.save()
    assert metrics.remedy_spend() == [
        {
            "currency": "CNY",
            "spent": Decimal(0),
            "count": 0,
            "budget": Decimal("500"),
            "share": Decimal("0.00"),
            "by_kind": [],
        }
    ]


# --- root causes and defect rates ------------------------------------------------------------


def order_with(*lines: tuple[str, str, str], placed_ago: timedelta = timedelta(days=1)) -> Order:
    order = Order.objects.create(
        customer=data.customer(),
        number=f"SO-{Order.objects.count() + 1}",
        currency="CNY",
        placed_at=timezone.now() - placed_ago,
    )
    for sku, product, supplier in lines:
        OrderLine.objects.create(
            order=order,
            sku=sku,
            product_name=product,
            supplier=supplier,
            unit_price_amount=Decimal("10"),
        )
    return order


@pytest.fixture(params=["grouping sets", "union of groups"])
def grouping(request, monkeypatch):
    """Root causes and defect rates count each dimension in one GROUPING SETS pass on
    PostgreSQL and with a UNION ALL of one GROUP BY each elsewhere (SQLite under make run):
    both must give the same figures."""
    if request.param == "union of groups":
        monkeypatch.setattr(metrics, "has_grouping_sets", lambda: False)
    return request.param


def test_root_causes_compare_the_window_with_the_one_before(codes, grouping):
    hood = order_with(
        ("SKU-A", "Range hood", "Fotile"),
        ("SKU-A2", "Range hood", "Fotile"),
        ("SKU-C", "Filter", ""),
    )
    cooktop = order_with(("SKU-B", "Cooktop", "Fotile"))
    data.tickets(3, reason="damaged", order=hood)
    data.tickets(1, reason="late")
    data.tickets(1, reason="damaged", order=cooktop, ago=timedelta(days=40))
    data.tickets(2, reason="late", ago=timedelta(days=45))
    data.tickets(5, reason="question", order=cooktop)  # not complaints
    data.tickets(9, reason="damaged", ago=timedelta(days=61))  # before both windows

    causes = metrics.root_causes(days=30)

    def rows(name):
        return [(r["key"], r["complaints"], r["previous"], r["trend"]) for r in causes[name]]

    assert rows("reasons") == [("damaged", 3, 1, 2), ("late", 1, 2, -1)]
    assert causes["reasons"][0]["label"] == "Arrived damaged 到货破损"
    assert rows("products") == [("Filter", 3, 0, 3), ("Range hood", 3, 0, 3), ("Cooktop", 0, 1, -1)]
    assert rows("skus") == [
        ("SKU-A", 3, 0, 3),
        ("SKU-A2", 3, 0, 3),
        ("SKU-C", 3, 0, 3),
        ("SKU-B", 0, 1, -1),
    ]
    assert rows("suppliers") == [("Fotile", 3, 1, 2)]


def test_defect_rates_pass_the_limit_only_above_it_with_enough_orders(codes, grouping):
    for index in range(25):
        order = order_with(("SKU-X", "Kettle", "Fotile"))
        if index == 0:
            data.tickets(2, reason="damaged", order=order)  # two tickets, one order
    for index in range(10):
        order = order_with(("SKU-Y", "Toaster", "Midea"))
        if index < 5:
            data.tickets(1, reason="late", order=order)
    for index in range(100):
        order = order_with(("SKU-Z", "Blender", "Fotile"))
        if index == 0:
            data.tickets(1, reason="damaged", order=order)
        if index == 1:
            data.tickets(1, reason="question", order=order)
    old = order_with(("SKU-X", "Kettle", "Fotile"), placed_ago=timedelta(days=40))
    data.tickets(1, reason="damaged", order=old)

    found = {(r["dimension"], r["key"]): r for r in metrics.defect_rates(days=30)}

    def figures(dimension, key):
        row = found[dimension, key]
        return row["orders"], row["complaint_orders"], row["rate"], row["above"]

    assert figures("sku", "SKU-X") == (25, 1, Decimal("4.00"), True)
    assert figures("sku", "SKU-Y") == (10, 5, Decimal("50.00"), False)  # too few orders
    assert figures("sku", "SKU-Z") == (100, 1, Decimal("1.00"), False)  # at the limit
    assert figures("supplier", "Fotile") == (125, 2, Decimal("1.60"), True)
    assert figures("supplier", "Midea") == (10, 5, Decimal("50.00"), False)
    assert found["sku", "SKU-X"]["label"] == "SKU-X Kettle"
    assert len(found) == 5


# --- what if ---------------------------------------------------------------------------------


def test_what_if_matches_the_hand_computed_case(codes, agent_li, agents_refund_limit):
    """40 complaint tickets this week, 6 escalated (15%). Refunds past agents' ¥100 limit:
    ¥120 (only trigger), ¥150 (only trigger), ¥150 (the customer also asked for a supervisor),
    ¥300 (only trigger), and ¥120 on a ticket from before the window; a manual escalation; a
    ¥50 gift agents may not give at all.

    Refund candidates ¥120 / ¥150 / ¥300 absorb 2 / 4 / 5 requests costing 240 / 540 / 840 and
    would have avoided 1 / 2 / 3 escalated tickets: 5 / 4 / 3 of 40 = 12.50% / 10.00% / 7.50%.
    """
    complaints = data.tickets(40)
    t1, t2, t3, t4, t5, t6 = complaints[:6]
    old = data.tickets(1, ago=timedelta(days=10))[0]
    data.over_limit(t1, "120", by=agent_li)
    data.over_limit(t2, "150", by=agent_li)
    data.over_limit(t3, "150", by=agent_li)
    data.escalate(t3, Trigger.CUSTOMER_REQUEST)
    data.over_limit(t4, "300", by=agent_li)
    data.escalate(t5, Trigger.MANUAL, raised_by=agent_li)
    data.over_limit(t6, "50", by=agent_li, kind=RemedyKind.GIFT)
    data.over_limit(old, "120", by=agent_li)

    refund, gift = sorted(metrics.what_if(days=7), key=lambda w: w.kind != "refund")

    assert (refund.complaints, refund.escalated, refund.rate) == (40, 6, Decimal("15.00"))
    assert (refund.kind, refund.currency, refund.requests) == ("refund", "CNY", 5)
    assert refund.asked == Decimal("840")
    assert refund.current_limit == Decimal("100")
    assert [(c.limit, c.absorbed, c.cost, c.avoided, c.rate) for c in refund.candidates] == [
        (Decimal("120"), 2, Decimal("240"), 1, Decimal("12.50")),
        (Decimal("150"), 4, Decimal("540"), 2, Decimal("10.00")),
        (Decimal("300"), 5, Decimal("840"), 3, Decimal("7.50")),
    ]
    assert (gift.kind, gift.requests, gift.current_limit) == ("gift", 1, Decimal("0"))
    assert [(c.limit, c.absorbed, c.cost, c.avoided, c.rate) for c in gift.candidates] == [
        (Decimal("50"), 1, Decimal("50"), 1, Decimal("12.50")),
    ]
    assert refund.as_json()["candidates"][0] == {
        "limit": "120.00",
        "absorbed": 2,
        "cost": "240.00",
        "avoided": 1,
        "rate": "12.50",
    }


def test_what_if_uses_a_persons_own_limit_over_their_roles(codes, agent_li, agents_refund_limit):
    RemedyLimit.objects.create(
        user=agent_li, kind=RemedyKind.REFUND, currency="CNY", per_grant_max_amount=Decimal("60")
    )
    data.over_limit(data.tickets(1)[0], "80", by=agent_li)
    assert metrics.what_if()[0].current_limit == Decimal("60")


def test_what_if_is_empty_without_over_limit_escalations(codes, agent_li):
    data.escalate(data.tickets(1)[0], Trigger.MANUAL)
    assert metrics.what_if() == []


def test_more_than_five_asked_amounts_are_cut_to_five_quantiles():
    asked = Counter({Decimal(amount): 1 for amount in range(101, 111)})
    assert candidate_limits(asked) == [Decimal(n) for n in (102, 104, 106, 108, 110)]
    few = Counter({Decimal("120"): 3, Decimal("150"): 1})
    assert candidate_limits(few) == [Decimal("120"), Decimal("150")]
    skewed = Counter({Decimal(n): 1 for n in range(1, 7)} | {Decimal("5"): 20})
    # 25 requests: a fifth absorbed by 5, ..., all by 6.
    assert candidate_limits(skewed) == [Decimal("5"), Decimal("6")]


# --- bounded queries -------------------------------------------------------------------------


def all_figures() -> None:
    metrics.escalation_rate()
    metrics.rate_by_group()
    metrics.rate_series()
    metrics.escalation_drivers()
    metrics.agent_table()
    metrics.remedy_spend()
    metrics.root_causes()
    metrics.defect_rates()
    metrics.what_if()


def some_activity(agent, count: int) -> None:
    made = data.tickets(count, escalated=count // 2, assignee=agent)
    for index, ticket in enumerate(made[: count // 2]):
        data.over_limit(ticket, str(101 + index), by=agent)
        data.remedy(ticket, "10", by=agent, kind=RemedyKind.GIFT)
    for index in range(count // 4):
        order = order_with((f"SKU-{index}", f"Product {index}", f"Supplier {index}"))
        data.tickets(1, reason="late", order=order)


def test_the_number_of_queries_does_not_grow_with_the_data(
    codes, agent_li, agents_refund_limit, django_assert_max_num_queries
):
    policy()
    some_activity(agent_li, 8)
    with CaptureQueriesContext(connection) as few:
        all_figures()

    for index in range(5):
        some_activity(data.member(f"agent{index}"), 40)
    with CaptureQueriesContext(connection) as many:
        all_figures()

    assert len(many) == len(few)
    with django_assert_max_num_queries(30):
        all_figures()
