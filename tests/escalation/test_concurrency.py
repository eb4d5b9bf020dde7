"""Grants at the same moment on PostgreSQL: 100 attempts over 20 threads, each on its own
connection, by one agent on one order, never pass a limit and give exactly what the limits
allow."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections
from django.db.models import Sum
from django.utils import timezone

from escalation import limits
from escalation.limits import LimitExceeded
from escalation.models import PAYS_OUT, Remedy, RemedyKind, RemedyLimit
from escalation.services import grant_remedy
from helpdesk import tenancy
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.conftest import acting
from tests.factories import CustomerFactory, OrderFactory
from tickets import services as ticket_services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Order, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks"),
]

THREADS = 20
ATTEMPTS = 100
REFUND, PRICE_PROTECTION = RemedyKind.REFUND, RemedyKind.PRICE_PROTECTION


def in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` in ``count`` threads started together, each on its own connection."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def attempt(i: int) -> tuple[str, Decimal]:
    """The i-th grant tried: refunds and price-drop compensations of 10 and 20 (the per-grant
    bound), and one fen past the bound in every fifth of each."""
    kind = REFUND if i % 2 == 0 else PRICE_PROTECTION
    amount = {0: "20.01", 1: "20.01", 2: "20.00", 3: "20.00"}.get(i % 10, "10.00")
    return kind, Decimal(amount)


def ticket_on(order: Order) -> Ticket:
    return ticket_services.open_ticket(
        acting_agent=SYSTEM,
        customer=order.customer,
        subject="降价补偿",
        channel="email",
        order=order,
    )


def test_a_hundred_grants_at_once_give_exactly_what_the_limits_allow(
    tenant_acme, agent_li, supervisor_wang, monkeypatch
):
    # One moment for the whole run: the agent's day cannot turn over under the test.
    noon = datetime(2026, 3, 10, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
    monkeypatch.setattr(timezone, "now", lambda: noon)
    with tenancy.activate(tenant_acme):
        li, wang = acting(agent_li), acting(supervisor_wang)
        # Li: 20 per grant; refunds up to 400 a day; price-drop compensation up to 250 per
        # customer in the period. Supervisors: no caps.
        RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=REFUND,
            currency="CNY",
            per_grant_max_amount=Decimal(20),
            per_agent_day_max_amount=Decimal(400),
        )
        RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=PRICE_PROTECTION,
            currency="CNY",
            per_grant_max_amount=Decimal(20),
            per_customer_period_max_amount=Decimal(250),
        )
        for kind in (REFUND, PRICE_PROTECTION):
            RemedyLimit.objects.create(role=Role.SUPERVISOR, kind=kind, currency="CNY")
        buyer = CustomerFactory(name="王芳")
        order = OrderFactory(customer=buyer, total_amount=Decimal(700), paid_amount=Decimal(700))
        ticket = ticket_on(order)
        # Given before the rush, through the same service:
        grant_remedy(acting_agent=wang, ticket=ticket, kind=REFUND, amount="200")  # 500 left
        earlier = ticket_on(OrderFactory(customer=buyer, total_amount=Decimal(1000)))
        grant_remedy(
            acting_agent=wang, ticket=earlier, kind=PRICE_PROTECTION, amount="50"
        )  # the buyer may get 200 more compensation
        elsewhere = ticket_on(OrderFactory(total_amount=Decimal(1000)))
        for _ in range(5):
            grant_remedy(acting_agent=li, ticket=elsewhere, kind=REFUND, amount="20")
        # Li may refund 300 more today. 300 + 200 = the 500 left on the order: every limit
        # ends exactly at its bound, whatever order the grants run in.
        before = Remedy.objects.count()

    granted: list[tuple[str, Decimal]] = []
    refusals: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        with tenancy.activate(tenant_acme):
            for i in range(thread, ATTEMPTS, THREADS):
                kind, amount = attempt(i)
                try:
                    remedy = grant_remedy(
                        acting_agent=li, ticket=ticket, kind=kind, amount=str(amount)
                    )
                except LimitExceeded as refusal:
                    with lock:
                        refusals.append(refusal.extra["limit"])
                else:
                    with lock:
                        granted.append((remedy.kind, remedy.amount))

    assert in_threads(THREADS, work) == []  # no deadlock, no other error

    given = Counter()
    for kind, amount in granted:
        given[kind] += amount
        assert amount <= 20
    assert given == {REFUND: Decimal(300), PRICE_PROTECTION: Decimal(200)}
    assert len(granted) + len(refusals) == ATTEMPTS
    named = Counter(refusals)
    assert named["per_grant"] == 20  # every 20.01, and nothing else
    assert named["per_agent_day"] > 0 and named["per_customer_period"] > 0
    assert set(named) == {"per_grant", "per_agent_day", "per_customer_period"}

    with tenancy.activate(tenant_acme):
        order.refresh_from_db()
        assert order.refunded_amount == order.paid_amount == Decimal(700)
        paid_out = Remedy.objects.filter(order=order, kind__in=PAYS_OUT).aggregate(s=Sum("amount"))
        assert paid_out["s"] == order.refunded_amount
        assert Remedy.objects.count() == before + len(granted)
        assert AuditEvent.objects.filter(action=AuditKind.REMEDY_GRANTED).count() == (
            Remedy.objects.count()
        )
        # Every limit is at its bound: nothing more for Li, and the order is fully paid back.
        for kind, limit in [(REFUND, "per_agent_day"), (PRICE_PROTECTION, "per_customer_period")]:
            left = {
                bound.limit: bound.remaining
                for bound in limits.bounds(
                    li, kind=kind, currency="CNY", customer=buyer, order=order
                )
            }
            assert left[limit] == 0 and left["order_refundable"] == 0
        with pytest.raises(LimitExceeded) as refusal:
            grant_remedy(acting_agent=wang, ticket=ticket, kind=REFUND, amount="0.01")
        assert refusal.value.extra["limit"] == "order_refundable"
