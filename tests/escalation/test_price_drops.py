"""Price protection (Fotile's practice): a supervisor records a price cut, the helpdesk finds who
paid more within the window, and a batch grant pays each of those orders the difference once,
within the limits, telling each customer on the channel they use. (Orders past the limits sent
for approval as one request: test_batch_approvals.py.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone, translation

from escalation.limits import LimitExceeded
from escalation.models import (
    ApprovalRequest,
    PriceDrop,
    PriceDropCompensation,
    Remedy,
    RemedyKind,
    RemedyLimit,
)
from escalation.price_drops import compensate, eligible_orders, record_price_drop
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from helpdesk.money import format_money
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import (
    CustomerFactory,
    MembershipFactory,
    OrderFactory,
    OrderLineFactory,
    UserFactory,
)
from tickets.models import Customer, Message, Order, Ticket
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db

SKU = "HOOD-JQ01"
PRODUCT = "Range hood 吸油烟机 JQ01"
PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


def bought(
    *,
    price: str,
    days_ago: float,
    quantity: int = 1,
    sku: str = SKU,
    currency: str = "CNY",
    status: str = Order.Status.PAID,
    refunded: str = "0",
    customer: Customer | None = None,
) -> Order:
    """An order of ``quantity`` units at ``price`` each, placed ``days_ago`` days ago, paid."""
    paid = Decimal(price) * quantity
    order = OrderFactory(
        customer=customer or CustomerFactory(),
        currency=currency,
        total_amount=paid,
        paid_amount=paid,
        refunded_amount=Decimal(refunded),
        status=status,
        placed_at=timezone.now() - timedelta(days=days_ago),
    )
    OrderLineFactory(
        order=order,
        sku=sku,
        product_name=PRODUCT,
        unit_price_amount=Decimal(price),
        quantity=quantity,
    )
    return order


def cut_to(supervisor, price: str, *, currency: str = "", days: int = 30, **kwargs) -> PriceDrop:
    return record_price_drop(
        acting_agent=acting(supervisor),
        sku=SKU,
        new_unit_price=price,
        protection_days=days,
        currency=currency,
        **kwargs,
    )


def protection_limit(currency: str = "CNY", **caps: Decimal) -> RemedyLimit:
    """Supervisors may compensate price drops in ``currency``, within ``caps``."""
    return RemedyLimit.objects.create(
        role=Role.SUPERVISOR, kind=RemedyKind.PRICE_PROTECTION, currency=currency, **caps
    )


def outcomes(results) -> list[tuple[str, str, Decimal | None]]:
    return [(r.order.number, r.outcome.value, r.amount) for r in results]


# --- who is owed what ---------------------------------------------------------------------------


def test_buyers_who_paid_more_within_the_window_are_owed_the_difference(in_acme, supervisor_wang):
    # The cut took effect yesterday; its window is the 30 days before it.
    owed = bought(price="3999.00", days_ago=10, quantity=2)
    bought(price="3499.00", days_ago=5)  # paid the new price already
    bought(price="3299.00", days_ago=3)  # paid less (a promotion)
    bought(price="4299.00", days_ago=32)  # before the window
    bought(price="3999.00", days_ago=0.5)  # after the cut
    bought(price="3999.00", days_ago=2, status=Order.Status.CANCELLED)
    bought(price="3999.00", days_ago=2, refunded="3999.00")  # paid back in full
    bought(price="3999.00", days_ago=2, sku="HOB-X2")
    bought(price="599.00", days_ago=2, currency="USD")

    cut = cut_to(supervisor_wang, "3499.00", cut_at=timezone.now() - timedelta(days=1))

    assert (cut.product_name, cut.currency) == (PRODUCT, "CNY")
    # The old price is the highest paid in the window by orders that still stand.
    assert cut.old_unit_price_amount == Decimal("3999.00")
    [entry] = eligible_orders(cut)
    assert (entry.order.number, entry.quantity, entry.difference) == (
        owed.number,
        2,
        Decimal("1000.00"),
    )
    assert entry.formatted == format_money(Decimal("1000.00"), "CNY")


def test_an_order_partly_refunded_is_still_owed_and_one_with_two_lines_is_owed_for_both(
    in_acme, supervisor_wang
):
    partly = bought(price="3999.00", days_ago=3, refunded="100.00")
    two_lines = bought(price="3999.00", days_ago=4)
    OrderLineFactory(
        order=two_lines, sku=SKU, product_name=PRODUCT, unit_price_amount=Decimal("3699.00")
    )
    cut = cut_to(supervisor_wang, "3499.00")

    assert [(e.order.number, e.difference) for e in eligible_orders(cut)] == [
        (two_lines.number, Decimal("700.00")),
        (partly.number, Decimal("500.00")),
    ]


def test_a_cut_nobody_paid_more_for_is_not_recorded(in_acme, supervisor_wang):
    bought(price="3499.00", days_ago=3)
    with translation.override("en"), pytest.raises(BadInput, match="nothing to compensate"):
        cut_to(supervisor_wang, "3499.00")
    with pytest.raises(BadInput):
        cut_to(supervisor_wang, "3299.00", cut_at=timezone.now() + timedelta(days=1))
    with pytest.raises(BadInput):
        cut_to(supervisor_wang, "3299.00", days=0)
    with pytest.raises(BadInput):
        cut_to(supervisor_wang, "-1")
    assert not PriceDrop.objects.exists()


def test_agents_may_not_record_or_compensate_price_cuts(in_acme, agent_li, supervisor_wang):
    order = bought(price="3999.00", days_ago=3)
    protection_limit()
    with pytest.raises(PermissionDenied):
        cut_to(agent_li, "3499.00")
    cut = cut_to(supervisor_wang, "3499.00")
    with pytest.raises(PermissionDenied):
        compensate(acting_agent=acting(agent_li), price_drop=cut, orders=[order])
    assert not Remedy.objects.exists()


# --- paying the difference ----------------------------------------------------------------------


def test_a_batch_pays_each_order_once_even_when_run_twice(in_acme, supervisor_wang):
    protection_limit()
    first = bought(price="3999.00", days_ago=10)
    second = bought(price="3799.00", days_ago=4, quantity=2)
    cut = cut_to(supervisor_wang, "3499.00")

    results = compensate(
        acting_agent=acting(supervisor_wang), price_drop=cut, orders=[first, second, first]
    )
    assert outcomes(results) == [
        (first.number, "granted", Decimal("500.00")),
        (second.number, "granted", Decimal("600.00")),
    ]
    assert eligible_orders(cut) == []

    with translation.override("en"):
        again = compensate(
            acting_agent=acting(supervisor_wang), price_drop=cut, orders=[first, second]
        )
        assert [r.describe() for r in again] == [
            f"Order {first.number}: already compensated for this price cut.",
            f"Order {second.number}: already compensated for this price cut.",
        ]
    assert outcomes(again) == [
        (first.number, "already_compensated", None),
        (second.number, "already_compensated", None),
    ]
    remedies = Remedy.objects.filter(kind=RemedyKind.PRICE_PROTECTION)
    assert sorted(remedies.values_list("order__number", "amount")) == [
        (first.number, Decimal("500.00")),
        (second.number, Decimal("600.00")),
    ]
    assert PriceDropCompensation.objects.count() == 2
    first.refresh_from_db()
    assert first.refunded_amount == Decimal("500.00")


def test_a_batch_never_passes_the_limits(in_acme, supervisor_wang):
    # ¥250 a day: two orders owed ¥100 fit, the third goes to another supervisor for approval.
    protection_limit(per_agent_day_max_amount=Decimal("250"))
    orders = [bought(price="3599.00", days_ago=days) for days in (9, 8, 7)]
    cut = cut_to(supervisor_wang, "3499.00")

    with translation.override("en"):
        results = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=orders)
        expected_reason = LimitExceeded(
            limit="per_agent_day",
            allowed=Decimal("50.00"),
            requested=Decimal("100.00"),
            currency="CNY",
            kind=RemedyKind.PRICE_PROTECTION,
        ).message
        assert results[2].describe() == (
            f"Order {orders[2].number}: {format_money(Decimal('100'), 'CNY')} is above your "
            "limits: sent to a supervisor for approval."
        )
    assert outcomes(results) == [
        (orders[0].number, "granted", Decimal("100.00")),
        (orders[1].number, "granted", Decimal("100.00")),
        (orders[2].number, "sent_for_approval", Decimal("100.00")),
    ]
    assert "what you may give in one day" in expected_reason
    [asked] = ApprovalRequest.objects.all()
    assert (asked.refusal, asked.refusal_limit, asked.amount) == (
        expected_reason,
        "per_agent_day",
        Decimal("100"),
    )
    # Nothing written for the order sent for approval: no remedy, no compensation, no ticket.
    assert Remedy.objects.count() == 2
    assert PriceDropCompensation.objects.count() == 2
    assert Ticket.objects.count() == 2
    orders[2].refresh_from_db()
    assert orders[2].refunded_amount == 0
    assert [e.order.number for e in eligible_orders(cut)] == [orders[2].number]


def test_an_order_past_what_is_left_on_it_is_refused_with_the_reason(in_acme, supervisor_wang):
    protection_limit()
    order = bought(price="3999.00", days_ago=3, refunded="3800.00")
    cut = cut_to(supervisor_wang, "3499.00")
    with translation.override("en"):
        [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])
    assert result.outcome == "refused"
    assert "what was paid on the order and not yet refunded" in result.reason
    assert not Remedy.objects.exists()
    # No approval lifts it: nothing is sent to a supervisor.
    assert not ApprovalRequest.objects.exists()


def test_without_a_limit_for_the_currency_nothing_is_granted_but_sent_for_approval(
    in_acme, supervisor_wang
):
    protection_limit(currency="USD")
    order = bought(price="3999.00", days_ago=3)
    cut = cut_to(supervisor_wang, "3499.00")
    with translation.override("en"):
        [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])
    assert result.outcome == "sent_for_approval"
    assert not Remedy.objects.exists()
    [asked] = ApprovalRequest.objects.all()
    assert asked.refusal_limit == "not_empowered"
    assert "no limit is set for your role in this currency" in asked.refusal


def test_yen_amounts_have_no_decimals(in_acme, supervisor_wang):
    protection_limit(currency="JPY")
    order = bought(price="12800", days_ago=3, quantity=2, currency="JPY")
    with pytest.raises(BadInput):
        cut_to(supervisor_wang, "9980.5", currency="JPY")
    cut = cut_to(supervisor_wang, "9980", currency="jpy")

    [entry] = eligible_orders(cut)
    assert str(entry.difference) == "5640"
    assert entry.formatted == format_money(Decimal("5640"), "JPY")
    assert "5,640" in entry.formatted and "." not in entry.formatted
    [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])
    assert result.remedy.amount == Decimal("5640")
    assert result.remedy.currency == "JPY"


# --- telling the customer ----------------------------------------------------------------------


def test_the_customer_is_told_by_email_on_a_new_ticket(
    acme_email, supervisor_wang, mailoutbox, django_capture_on_commit_callbacks
):
    protection_limit()
    buyer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    order = bought(price="3999.00", days_ago=3, customer=buyer)
    cut = cut_to(supervisor_wang, "3499.00")

    with django_capture_on_commit_callbacks(execute=True):
        [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])

    assert result.outcome == "granted" and not result.notice_error
    ticket = Ticket.objects.get(pk=result.ticket.pk)
    assert (ticket.customer, ticket.order, ticket.channel) == (buyer, order, "email")
    assert PRODUCT in ticket.subject
    [mail] = mailoutbox
    assert mail.to == ["li.wei@example.cn"]
    # Written in the customer's language (the merchant's, Chinese): the amount as they write it.
    assert format_money(Decimal("500"), "CNY", "zh-hans") in mail.body
    assert order.number in mail.body
    reply = Message.objects.get(ticket=ticket, direction=Message.Direction.OUTBOUND)
    assert reply.delivery_state == Message.Delivery.SENT
    # Nothing waits for the customer: the ticket opened for the compensation is solved.
    assert ticket.status == Ticket.Status.SOLVED


def test_an_open_ticket_about_the_order_gets_the_notice(
    acme_email, supervisor_wang, mailoutbox, django_capture_on_commit_callbacks
):
    protection_limit()
    buyer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    order = bought(price="3999.00", days_ago=3, customer=buyer)
    asked = open_ticket(
        acting_agent=SYSTEM, customer=buyer, subject="什么时候发货？", channel="email", order=order
    )
    Ticket.objects.filter(pk=asked.pk).update(status=Ticket.Status.OPEN)
    cut = cut_to(supervisor_wang, "3499.00")

    with django_capture_on_commit_callbacks(execute=True):
        [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])

    assert result.ticket.pk == asked.pk
    assert Ticket.objects.count() == 1
    [mail] = mailoutbox
    assert mail.to == ["li.wei@example.cn"] and f"[#{asked.number}]" in mail.subject
    # The customer's own question is still open.
    assert Ticket.objects.get(pk=asked.pk).status == Ticket.Status.OPEN


def test_a_customer_who_cannot_be_reached_keeps_the_grant(
    acme_email, supervisor_wang, mailoutbox, django_capture_on_commit_callbacks
):
    protection_limit()
    order = bought(price="3999.00", days_ago=3)  # no email address on file
    cut = cut_to(supervisor_wang, "3499.00")

    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        [result] = compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[order])
        assert "could not be told" in result.describe()

    assert result.outcome == "granted"
    assert "no email address" in result.notice_error
    assert Remedy.objects.get().order == order
    assert PriceDropCompensation.objects.count() == 1
    assert mailoutbox == []


# --- the pages ----------------------------------------------------------------------------------


def test_a_supervisor_records_a_cut_and_compensates_from_the_pages(tenant_acme, supervisor_wang):
    with tenancy.activate(tenant_acme):
        protection_limit()
        owed = bought(price="3999.00", days_ago=10)
        bought(price="3399.00", days_ago=10)
    client = login(supervisor_wang)

    page = client.post(
        "/escalation/price-drops/",
        {"sku": SKU, "new_unit_price": "3499.00", "protection_days": "30"},
        follow=True,
        **PAGE,
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "1 order is owed the difference" in text
    assert f'data-order="{owed.number}"' in text
    assert format_money(Decimal("500"), "CNY", "en") in text
    assert "Compensate selected" in text
    with tenancy.activate(tenant_acme):
        cut = PriceDrop.objects.get()

    page = client.post(
        f"/escalation/price-drops/{cut.pk}/",
        {"order": [str(owed.pk), "junk", "99999999999999999999", str(owed.pk)]},
        follow=True,
        **PAGE,
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert f"Order {owed.number}: {format_money(Decimal('500'), 'CNY', 'en')} granted" in text
    assert "No order is owed anything for this price cut." in text
    with tenancy.activate(tenant_acme):
        assert Remedy.objects.get().order == owed

    listing = client.get("/escalation/price-drops/", **PAGE).content.decode()
    assert f'href="/escalation/price-drops/{cut.pk}/"' in listing


def test_a_cut_typed_wrong_is_refused_on_the_page_with_the_reason(tenant_acme, supervisor_wang):
    with tenancy.activate(tenant_acme):
        bought(price="3999.00", days_ago=10)
    client = login(supervisor_wang)
    for fields in (
        {"sku": SKU, "new_unit_price": "abc", "protection_days": "30"},
        {"sku": SKU, "new_unit_price": "3499.001", "protection_days": "30"},
        {"sku": SKU, "new_unit_price": "3499", "protection_days": "many"},
        {"sku": SKU, "new_unit_price": "3499", "protection_days": "30", "cut_at": "yesterday"},
        {"sku": SKU, "new_unit_price": "3499", "protection_days": "30", "currency": "XXQ"},
        {"sku": "", "new_unit_price": "3499", "protection_days": "30"},
        {"sku": SKU, "new_unit_price": "1" + "0" * 20, "protection_days": "30"},
    ):
        page = client.post("/escalation/price-drops/", fields, **PAGE)
        assert page.status_code == 400, fields
        assert 'class="error"' in page.content.decode()
    with tenancy.activate(tenant_acme):
        assert not PriceDrop.objects.exists()


def test_a_cut_may_be_dated_in_the_merchants_time(tenant_acme, supervisor_wang):
    with tenancy.activate(tenant_acme):
        bought(price="3999.00", days_ago=10)
    page = login(supervisor_wang).post(
        "/escalation/price-drops/",
        {
            "sku": SKU,
            "new_unit_price": "3499",
            "protection_days": "30",
            "cut_at": "2020-01-02T08:00",
        },
        **PAGE,
    )
    # Nobody bought in the 30 days before 2 January 2020.
    assert page.status_code == 400
    with tenancy.activate(tenant_acme):
        bought(price="3999.00", days_ago=1)
        when = (timezone.now() - timedelta(hours=1)).astimezone(timezone.get_fixed_timezone(480))
    page = login(supervisor_wang).post(
        "/escalation/price-drops/",
        {
            "sku": SKU,
            "new_unit_price": "3499",
            "protection_days": "30",
            "cut_at": when.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert page.status_code == 302
    with tenancy.activate(tenant_acme):
        cut = PriceDrop.objects.get()
    # Typed in Shanghai's time (the merchant's), stored as that moment.
    assert abs(cut.cut_at - when) < timedelta(minutes=1)


def test_agents_without_a_price_protection_limit_are_refused_the_pages(
    tenant_acme, agent_li, supervisor_wang
):
    with tenancy.activate(tenant_acme):
        protection_limit()
        order = bought(price="3999.00", days_ago=10)
        cut = cut_to(supervisor_wang, "3499.00")
    client = login(agent_li)
    assert client.get("/escalation/price-drops/", **PAGE).status_code == 403
    assert client.get(f"/escalation/price-drops/{cut.pk}/", **PAGE).status_code == 403
    assert (
        client.post(f"/escalation/price-drops/{cut.pk}/", {"order": [order.pk]}).status_code == 403
    )
    with tenancy.activate(tenant_acme):
        assert not Remedy.objects.exists()


def test_another_merchants_price_cut_is_not_found(
    tenant_acme, tenant_globex, supervisor_wang, globex_agent_li
):
    with tenancy.activate(tenant_globex):
        order = bought(price="99.00", days_ago=3, currency="USD")
        globex_cut = PriceDrop.objects.create(
            sku=SKU,
            product_name=PRODUCT,
            currency="USD",
            old_unit_price_amount=Decimal("99"),
            new_unit_price_amount=Decimal("79"),
            protection_days=30,
            cut_at=timezone.now(),
            created_by=globex_agent_li,
        )
    client = login(supervisor_wang)
    assert client.get(f"/escalation/price-drops/{globex_cut.pk}/", **PAGE).status_code == 404
    response = client.post(f"/escalation/price-drops/{globex_cut.pk}/", {"order": [order.pk]})
    assert response.status_code == 404
    assert (
        f"/escalation/price-drops/{globex_cut.pk}/"
        not in client.get("/escalation/price-drops/", **PAGE).content.decode()
    )
    with tenancy.activate(tenant_globex):
        assert not Remedy.objects.exists()


def test_another_merchants_order_posted_to_a_cut_is_ignored(
    tenant_acme, tenant_globex, supervisor_wang
):
    with tenancy.activate(tenant_globex):
        globex_order = bought(price="3999.00", days_ago=3)
    with tenancy.activate(tenant_acme):
        protection_limit()
        bought(price="3999.00", days_ago=3)
        cut = cut_to(supervisor_wang, "3499.00")
    page = login(supervisor_wang).post(
        f"/escalation/price-drops/{cut.pk}/", {"order": [globex_order.pk]}, follow=True, **PAGE
    )
    assert page.status_code == 200
    assert "Select the orders to compensate." in page.content.decode()
    with tenancy.activate(tenant_acme):
        assert not Remedy.objects.exists()


# --- two supervisors at the same moment ---------------------------------------------------------


def in_threads(count: int, work: Callable[[int], object]) -> list[BaseException]:
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
        thread.join(timeout=120)
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_two_supervisors_compensating_at_once_pay_each_order_once(tenant_acme, supervisor_wang):
    supervisor_zhou = MembershipFactory(
        tenant=tenant_acme, user=UserFactory(username="zhou.acme"), role=Role.SUPERVISOR
    ).user
    with tenancy.activate(tenant_acme):
        protection_limit()
        orders = [bought(price="3999.00", days_ago=days) for days in range(1, 7)]
        cut = cut_to(supervisor_wang, "3499.00")
    results: dict[int, list] = {}

    def click(i: int) -> None:
        supervisor = (supervisor_wang, supervisor_zhou)[i]
        with tenancy.activate(tenant_acme):
            batch = orders if i == 0 else list(reversed(orders))
            results[i] = compensate(acting_agent=acting(supervisor), price_drop=cut, orders=batch)

    assert in_threads(2, click) == []
    granted = [r.order.number for i in (0, 1) for r in results[i] if r.outcome == "granted"]
    assert sorted(granted) == sorted(o.number for o in orders)
    assert {r.outcome.value for i in (0, 1) for r in results[i]} <= {
        "granted",
        "already_compensated",
    }
    with tenancy.activate(tenant_acme):
        assert Remedy.objects.count() == len(orders)
        assert PriceDropCompensation.objects.count() == len(orders)
        for order in orders:
            order.refresh_from_db()
            assert order.refunded_amount == Decimal("500.00")
