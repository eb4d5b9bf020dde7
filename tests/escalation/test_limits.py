"""Empowerment limits: each limit lets a grant through exactly at its bound and refuses one
smallest currency unit past it, naming the limit and the overshoot, with nothing written.

Acme (Asia/Shanghai) has ``agent_li`` and ``supervisor_wang``. No execution URL is set, so a
granted remedy waits to be carried out by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.http import Http404
from django.utils import timezone, translation

from escalation import execution, limits
from escalation.limits import LimitExceeded
from escalation.models import Remedy, RemedyKind, RemedyLimit
from escalation.services import grant_remedy
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from helpdesk.money import rounded
from helpdesk.permissions import SYSTEM, ActingAgent
from tests.conftest import _member, acting
from tests.factories import CustomerFactory, OrderFactory
from tickets import services as ticket_services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Customer, Group, GroupMember, Order, Ticket
from tickets.selectors import access_ticket

pytestmark = pytest.mark.django_db

REFUND = RemedyKind.REFUND
# Each currency with its smallest unit: a fen, a yen, a fils.
UNITS = [("CNY", Decimal("0.01")), ("JPY", Decimal("1")), ("KWD", Decimal("0.001"))]
BOUND = Decimal(100)


# --- the merchant, its limits and its tickets -------------------------------------------------


@pytest.fixture
def li(in_acme, agent_li) -> ActingAgent:
    return acting(agent_li)


@pytest.fixture
def wang(in_acme, supervisor_wang) -> ActingAgent:
    return acting(supervisor_wang)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """``clock(moment)``: the helpdesk's time from now on (grants are stamped with it)."""

    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_to


def allow(
    *,
    kind: str = REFUND,
    currency: str = "CNY",
    role: str = Role.AGENT,
    user: Any = None,
    **caps: Decimal | str,
) -> RemedyLimit:
    """A limit row: for a role, or for one person when ``user`` is given."""
    return RemedyLimit.objects.create(
        role="" if user is not None else role,
        user=user,
        kind=kind,
        currency=currency,
        **{name: Decimal(value) for name, value in caps.items()},
    )


def ticket_on(
    order: Order | None = None, *, customer: Customer | None = None, group: Group | None = None
) -> Ticket:
    customer = customer or (order.customer if order is not None else CustomerFactory())
    ticket = ticket_services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="热水器不加热", channel="email", order=order
    )
    if group is not None:
        Ticket.objects.filter(pk=ticket.pk).update(group=group)
        ticket.refresh_from_db()
    return ticket


def order_of(
    currency: str = "CNY",
    *,
    total: Decimal | str = "1000",
    paid: Decimal | str | None = None,
    customer: Customer | None = None,
) -> Order:
    extra = {"customer": customer} if customer is not None else {}
    return OrderFactory(
        currency=currency,
        total_amount=Decimal(total),
        paid_amount=Decimal(paid if paid is not None else total),
        **extra,
    )


def grant(
    agent: ActingAgent, ticket: Ticket, amount: Decimal | str | None, kind: str = REFUND, **kw: Any
) -> Remedy:
    return grant_remedy(
        acting_agent=agent,
        ticket=ticket,
        kind=kind,
        amount=str(amount) if isinstance(amount, Decimal) else amount,
        **kw,
    )


def written() -> SimpleNamespace:
    """What a refused grant must leave as it was: remedies, grant audit rows, refunds."""
    return SimpleNamespace(
        remedies=Remedy.objects.count(),
        audits=AuditEvent.objects.filter(action=AuditKind.REMEDY_GRANTED).count(),
        refunded=dict(Order.objects.values_list("pk", "refunded_amount")),
    )


def refused(
    agent: ActingAgent,
    ticket: Ticket,
    amount: Decimal | str | None,
    *,
    limit: str,
    kind: str = REFUND,
    **kw: Any,
) -> LimitExceeded:
    """Grant and expect LimitExceeded naming ``limit``, with no row written and no refund."""
    before = written()
    with pytest.raises(LimitExceeded) as refusal:
        grant(agent, ticket, amount, kind, **kw)
    assert refusal.value.extra["limit"] == limit
    assert refusal.value.status == 403
    assert written() == before
    return refusal.value


def refused_input(agent: ActingAgent, ticket: Ticket, amount: object, **kw: Any) -> BadInput:
    before = written()
    with pytest.raises(BadInput) as refusal:
        grant_remedy(acting_agent=agent, ticket=ticket, kind=kw.pop("kind", REFUND), amount=amount)
    assert written() == before
    return refusal.value


def overshoot(refusal: LimitExceeded) -> tuple[Decimal, Decimal]:
    """(allowed, over) as the refusal tells them."""
    return Decimal(refusal.extra["allowed"]), Decimal(refusal.extra["over"])


# --- a grant within the limits ------------------------------------------------------------------


def test_a_grant_within_the_limits_is_immediate_audited_and_waits_for_manual_execution(li):
    allow(per_grant_max_amount="300")
    order = order_of(total="299.00")
    ticket = ticket_on(order)

    remedy = grant(li, ticket, "120.50", note="  漏水赔偿  ")

    remedy.refresh_from_db()
    assert (remedy.kind, remedy.amount, remedy.currency) == (REFUND, Decimal("120.50"), "CNY")
    assert remedy.granted_by == li.user and remedy.granted_role == Role.AGENT
    assert remedy.note == "漏水赔偿"
    assert remedy.execution == Remedy.Execution.MANUAL
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("120.50")
    event = AuditEvent.objects.get(action=AuditKind.REMEDY_GRANTED)
    assert (event.object_type, event.object_id, event.actor) == ("ticket", str(ticket.pk), li.user)
    assert event.changes["details"]["amount"] == "120.50"
    assert event.changes["details"]["order"] == order.number


# --- each limit, at its bound and one unit past it ----------------------------------------------


@pytest.mark.parametrize(("currency", "unit"), UNITS)
def test_per_grant_limit_allows_its_bound_and_refuses_one_unit_more(li, currency, unit):
    allow(currency=currency, per_grant_max_amount=BOUND)
    ticket = ticket_on(order_of(currency))

    assert grant(li, ticket, BOUND).amount == BOUND
    refusal = refused(li, ticket, BOUND + unit, limit="per_grant")

    assert overshoot(refusal) == (BOUND, unit)
    assert refusal.extra["over"] == str(unit)  # in the currency's own places: "0.01", "1"
    assert (refusal.extra["currency"], refusal.extra["kind"]) == (currency, REFUND)
    # The bound is per grant: the same amount again is fine.
    assert grant(li, ticket, BOUND).amount == BOUND


def test_a_refusal_says_in_the_agents_language_which_limit_and_by_how_much(li):
    allow(per_grant_max_amount="100")
    ticket = ticket_on(order_of())
    with translation.override("en"):
        refusal = refused(li, ticket, "100.01", limit="per_grant")
    assert refusal.message == (
        "CN¥100.01 is more than the most you may give in one grant allows: "
        "at most CN¥100.00, CN¥0.01 over"
    )
    assert refusal.as_dict()["code"] == "limit_exceeded"


@pytest.mark.parametrize(
    ("currency", "unit", "total", "share"),
    [
        # 30% of each order value, cut down to the smallest unit: never rounded up.
        ("CNY", Decimal("0.01"), "333.33", Decimal("99.99")),
        ("JPY", Decimal("1"), "999", Decimal("299")),
        ("KWD", Decimal("0.001"), "33.333", Decimal("9.999")),
    ],
)
def test_order_share_limit_allows_its_bound_and_refuses_one_unit_more(
    li, currency, unit, total, share
):
    allow(currency=currency, order_share_max_percent="30")
    ticket = ticket_on(order_of(currency, total=total))

    assert grant(li, ticket, share).amount == share
    refusal = refused(li, ticket, share + unit, limit="order_share")
    assert overshoot(refusal) == (share, unit)


@pytest.mark.parametrize(("currency", "unit"), UNITS)
def test_per_agent_day_limit_counts_the_merchants_day_not_utcs(li, clock, currency, unit):
    allow(currency=currency, per_agent_day_max_amount=BOUND)
    midnight = datetime(2026, 3, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    before, after = midnight - timedelta(seconds=1), midnight + timedelta(seconds=1)
    # In UTC both moments are on the same day (9 March, 15:59:59 and 16:00:01).
    assert before.astimezone(ZoneInfo("UTC")).date() == after.astimezone(ZoneInfo("UTC")).date()
    first = ticket_on(order_of(currency))
    second = ticket_on(order_of(currency))  # another customer: the day is the agent's

    clock(before)
    grant(li, first, BOUND - 10 * unit)
    grant(li, second, 10 * unit)
    refusal = refused(li, first, unit, limit="per_agent_day")
    assert overshoot(refusal) == (0, unit)

    clock(after)
    assert grant(li, second, BOUND).amount == BOUND
    refusal = refused(li, first, unit, limit="per_agent_day")
    assert overshoot(refusal) == (0, unit)


def test_per_agent_day_limit_is_each_persons_own(li, wang):
    allow(per_agent_day_max_amount="100")
    allow(role=Role.SUPERVISOR, per_agent_day_max_amount="100")
    ticket = ticket_on(order_of())
    grant(li, ticket, "100")
    refused(li, ticket, "0.01", limit="per_agent_day")
    assert grant(wang, ticket, "100").amount == Decimal("100")


@pytest.mark.parametrize(("currency", "unit"), UNITS)
def test_per_customer_limit_counts_a_rolling_period_the_merchant_sets(
    li, wang, clock, currency, unit
):
    policy = limits.policy()
    policy.customer_period_days = 7
    policy.save()
    allow(currency=currency, per_customer_period_max_amount=BOUND)
    allow(currency=currency, role=Role.SUPERVISOR, per_customer_period_max_amount=BOUND)
    customer = CustomerFactory()
    first = ticket_on(order_of(currency, customer=customer))
    second = ticket_on(order_of(currency, customer=customer))
    start = datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("UTC"))

    clock(start)
    grant(li, first, BOUND - unit)
    clock(start + timedelta(days=3))
    grant(wang, second, unit)  # whoever gives it, on whichever order: the customer's total
    # Someone else's customer is not affected.
    assert grant(li, ticket_on(order_of(currency)), BOUND).amount == BOUND

    clock(start + timedelta(days=7) - timedelta(seconds=1))
    refusal = refused(li, second, unit, limit="per_customer_period")
    assert overshoot(refusal) == (0, unit)

    # Seven days after the first grant it leaves the period; the second one is still in it.
    clock(start + timedelta(days=7, seconds=1))
    assert grant(li, second, BOUND - unit).amount == BOUND - unit
    refused(wang, first, unit, limit="per_customer_period")


@pytest.mark.parametrize(("currency", "unit"), UNITS)
def test_refunds_never_pass_what_was_paid_minus_what_was_refunded(li, currency, unit):
    allow(currency=currency)  # empowered, with no cap of any sort
    allow(kind=RemedyKind.PRICE_PROTECTION, currency=currency)
    allow(kind=RemedyKind.GIFT, currency=currency)
    order = order_of(currency, total="500", paid="150")
    ticket = ticket_on(order)

    grant(li, ticket, Decimal(100))
    grant(li, ticket, Decimal(30), kind=RemedyKind.PRICE_PROTECTION)  # pays out too
    assert grant(li, ticket, Decimal(20)).amount == Decimal(20)  # exactly what is left
    order.refresh_from_db()
    assert order.refunded_amount == order.paid_amount == Decimal(150)

    refusal = refused(li, ticket, unit, limit="order_refundable")
    assert overshoot(refusal) == (0, unit)
    refused(li, ticket, unit, kind=RemedyKind.PRICE_PROTECTION, limit="order_refundable")
    # A gift pays nothing back on the order.
    assert grant(li, ticket, Decimal(20), kind=RemedyKind.GIFT).kind == RemedyKind.GIFT


def test_what_was_refunded_before_counts_against_the_order(li):
    allow()
    order = order_of(total="300", paid="300")
    Order.objects.filter(pk=order.pk).update(refunded_amount=Decimal("180.50"))
    ticket = ticket_on(order)
    refusal = refused(li, ticket, "119.51", limit="order_refundable")
    assert overshoot(refusal) == (Decimal("119.50"), Decimal("0.01"))
    assert grant(li, ticket, "119.50").amount == Decimal("119.50")


# --- who is empowered -----------------------------------------------------------------------


def test_nothing_can_be_given_in_a_currency_without_a_limit_row(li):
    allow(currency="CNY", per_grant_max_amount="1000")
    jpy = ticket_on(order_of("JPY"))
    refusal = refused(li, jpy, "1", limit="not_empowered")
    assert overshoot(refusal) == (0, 1)
    # Nor of a kind without a row, nor by a role without one.
    cny = ticket_on(order_of("CNY"))
    refused(li, cny, "1", kind=RemedyKind.GIFT, limit="not_empowered")
    allow(role=Role.SUPERVISOR, kind=RemedyKind.PRICE_PROTECTION)
    refused(li, cny, "1", kind=RemedyKind.PRICE_PROTECTION, limit="not_empowered")


def test_a_persons_own_limit_beats_their_roles_in_both_directions(li, tenant_acme):
    zhang = acting(_member(tenant_acme, "zhang.acme", Role.AGENT).user)
    allow(per_grant_max_amount="50")
    ticket = ticket_on(order_of())

    allow(user=li.user, per_grant_max_amount="80")
    assert grant(li, ticket, "80").amount == Decimal(80)
    refusal = refused(li, ticket, "80.01", limit="per_grant")
    assert overshoot(refusal) == (Decimal(80), Decimal("0.01"))
    refused(zhang, ticket, "50.01", limit="per_grant")  # the role's limit for everyone else

    RemedyLimit.objects.filter(user=li.user).update(per_grant_max_amount=Decimal(30))
    assert grant(zhang, ticket, "50").amount == Decimal(50)
    refusal = refused(li, ticket, "30.01", limit="per_grant")
    assert overshoot(refusal) == (Decimal(30), Decimal("0.01"))

    # An override with no caps gives without a cap, whatever the role's row says.
    RemedyLimit.objects.filter(user=li.user).update(per_grant_max_amount=None)
    assert grant(li, ticket, "500").amount == Decimal(500)


def test_a_persons_override_in_one_currency_leaves_their_role_in_others(li):
    allow(user=li.user, currency="JPY", per_grant_max_amount="10000")
    allow(currency="CNY", per_grant_max_amount="50")
    refused(li, ticket_on(order_of("CNY")), "50.01", limit="per_grant")


# --- free orders --------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "unit"), UNITS)
def test_free_order_up_to_the_order_value_cap_gives_back_what_is_left(li, currency, unit):
    allow(kind=RemedyKind.FREE_ORDER, currency=currency, per_grant_max_amount=BOUND)
    allow(currency=currency)
    at_bound = order_of(currency, total=BOUND)
    ticket = ticket_on(at_bound)
    grant(li, ticket, Decimal(40))

    remedy = grant(li, ticket, None, kind=RemedyKind.FREE_ORDER)

    assert (remedy.kind, remedy.amount) == (RemedyKind.FREE_ORDER, BOUND - 40)
    assert str(remedy.amount) == str(rounded(BOUND - 40, currency))  # "60.00", "60", "60.000"
    at_bound.refresh_from_db()
    assert at_bound.refunded_amount == at_bound.paid_amount
    # Nothing is left to give back on it now.
    with pytest.raises(BadInput):
        grant(li, ticket, None, kind=RemedyKind.FREE_ORDER)

    past = ticket_on(order_of(currency, total=BOUND + unit))
    refusal = refused(li, past, None, kind=RemedyKind.FREE_ORDER, limit="free_order_value")
    assert refusal.extra["requested"] == str(BOUND + unit)  # the order's value
    assert overshoot(refusal) == (BOUND, unit)


def test_a_free_order_ignores_the_amount_asked_for(li):
    allow(kind=RemedyKind.FREE_ORDER)
    order = order_of(total="299", paid="299")
    remedy = grant(li, ticket_on(order), "1", kind=RemedyKind.FREE_ORDER)
    assert remedy.amount == Decimal("299")


def test_a_free_order_meets_the_other_limits_of_its_kind(li):
    allow(kind=RemedyKind.FREE_ORDER, per_grant_max_amount="500", per_agent_day_max_amount="400")
    grant(li, ticket_on(order_of(total="300")), None, kind=RemedyKind.FREE_ORDER)
    second = ticket_on(order_of(total="100.01"))
    refusal = refused(li, second, None, kind=RemedyKind.FREE_ORDER, limit="per_agent_day")
    assert overshoot(refusal) == (Decimal(100), Decimal("0.01"))


# --- amounts that are not amounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("CNY", "10.001"),
        ("CNY", 10.5),  # a float, however exact it looks
        ("CNY", "0"),
        ("CNY", "-1"),
        ("CNY", ""),
        ("CNY", None),
        ("CNY", "1e30"),
        ("JPY", "0.5"),
        ("KWD", "1.0001"),
    ],
)
def test_amounts_the_currency_cannot_hold_are_refused(li, currency, amount):
    allow(currency=currency)
    refusal = refused_input(li, ticket_on(order_of(currency)), amount)
    assert refusal.status == 400
    assert refusal.extra["field"] == "amount"


def test_unknown_kinds_and_another_customers_order_are_refused(li):
    allow()
    ticket = ticket_on(order_of())
    with pytest.raises(BadInput):
        grant(li, ticket, "1", kind="cash")
    someone_elses, without_order = order_of(), ticket_on()
    before = written()
    with pytest.raises(BadInput):
        grant(li, ticket, "1", order=someone_elses)
    with pytest.raises(BadInput):
        grant(li, without_order, "1")  # a refund needs an order
    assert written() == before


# --- whose tickets ------------------------------------------------------------------------------


def test_an_agent_cannot_grant_on_a_ticket_out_of_reach(li, agent_li):
    allow()
    pre_sales = Group.objects.create(name="Pre-sales")
    after_sales = Group.objects.create(name="After-sales")
    GroupMember.objects.create(group=after_sales, user=agent_li)
    ticket = ticket_on(order_of(), group=pre_sales)
    before = written()
    with pytest.raises(PermissionDenied):
        grant(li, ticket, "1")
    assert written() == before
    assert grant(li, ticket_on(order_of(), group=after_sales), "1").amount == Decimal(1)


def test_another_merchants_ticket_is_not_found_and_cannot_be_given_on(
    li, tenant_globex, globex_agent_li
):
    allow()
    mine = ticket_on(order_of())
    with tenancy.activate(tenant_globex):
        allow(currency="USD", role=Role.AGENT)
        ticket_on(order_of("USD"))
        theirs = ticket_on(order_of("USD"))
    assert theirs.number > mine.number

    with pytest.raises(Http404):
        access_ticket(agent=li, number=theirs.number)
    assert not Ticket.objects.filter(pk=theirs.pk).exists()
    with pytest.raises(PermissionDenied):
        grant(li, theirs, "1")
    assert Remedy.objects.count() == 0
    with tenancy.activate(tenant_globex):
        assert Remedy.objects.count() == 0
        # Globex's own agent in Acme's context is refused too.
        with pytest.raises(PermissionDenied):
            grant(acting(globex_agent_li, tenant_globex), mine, "1")


# --- one transaction ----------------------------------------------------------------------------


def test_the_grant_its_refund_and_its_audit_row_are_one_transaction(li, monkeypatch):
    allow()
    order = order_of()
    ticket = ticket_on(order)

    def hand_over_fails(remedy: Remedy) -> None:
        raise RuntimeError("order system unreachable")

    monkeypatch.setattr(execution, "hand_over", hand_over_fails)
    before = written()
    with pytest.raises(RuntimeError):
        grant(li, ticket, "10")
    assert written() == before
    monkeypatch.undo()

    refused(li, ticket, "1000.01", limit="order_refundable")
    assert not AuditEvent.objects.filter(action=AuditKind.REMEDY_GRANTED).exists()
    grant(li, ticket, "10")
    assert AuditEvent.objects.filter(action=AuditKind.REMEDY_GRANTED).count() == 1


# --- what the agent may still give --------------------------------------------------------------


def test_the_allowance_is_the_tightest_limit_left(li):
    allow(per_grant_max_amount="200", per_agent_day_max_amount="250")
    order = order_of(total="1000")
    ticket = ticket_on(order)
    customer = ticket.customer

    def now() -> limits.Allowance:
        order.refresh_from_db()
        return limits.allowance(li, kind=REFUND, currency="CNY", customer=customer, order=order)

    assert (now().amount, now().binding_limit) == (Decimal(200), "per_grant")
    grant(li, ticket, "100")
    assert (now().amount, now().binding_limit) == (Decimal(150), "per_agent_day")
    with translation.override("zh-hans"):
        assert now().formatted == "¥150.00"
    refused(li, ticket, "150.01", limit="per_agent_day")
    grant(li, ticket, "150")
    assert now().amount == 0
    gift = limits.allowance(
        li, kind=RemedyKind.GIFT, currency="CNY", customer=customer, order=order
    )
    assert not gift.empowered
