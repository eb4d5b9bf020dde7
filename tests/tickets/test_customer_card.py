"""The customer card on the ticket page: who the customer is, what they are worth per currency,
their latest orders with lines and shipping, and linking or unlinking the ticket's order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_in.models import ChannelAccount
from helpdesk import realtime
from helpdesk.errors import PermissionDenied
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory
from tickets import orders, search, services
from tickets.audit import AuditKind
from tickets.models import (
    AuditEvent,
    CustomerIdentity,
    Group,
    GroupMember,
    IdentityKind,
    Order,
    Ticket,
)

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, dict]]:
    """The live events services publish (after commit), as (event, payload)."""
    seen: list[tuple[str, dict]] = []

    def publish(tenant_id, event, payload, *, ticket=None) -> None:
        seen.append((event, payload))

    monkeypatch.setattr(realtime, "publish_after_commit", publish)
    return seen


def _ticket(customer, subject: str = "洗碗机漏水", order: Order | None = None) -> Ticket:
    return services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email", order=order
    )


@pytest.fixture
def wang_fang(in_acme):
    customer = CustomerFactory(name="王芳", email="wang.fang@example.cn", is_vip=True)
    wechat = ChannelAccount.objects.create(kind="wechat", name="Acme 公众号")
    CustomerIdentity.objects.create(
        customer=customer,
        kind=IdentityKind.WECHAT,
        value="o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
        account=wechat,
    )
    return customer


def _order(customer, number: str, *, days_ago: int, **fields: object) -> Order:
    return OrderFactory(
        customer=customer,
        number=number,
        placed_at=timezone.now() - timedelta(days=days_ago),
        **fields,
    )


def test_the_card_shows_identities_vip_lifetime_value_per_currency_and_orders(agent_li, wang_fang):
    shipped = _order(
        wang_fang,
        "SO20261105",
        days_ago=10,
        status=Order.Status.DELIVERED,
        total_amount=Decimal("598.00"),
        paid_amount=Decimal("598.00"),
        refunded_amount=Decimal("50.00"),
        shipped_at=timezone.now() - timedelta(days=9),
        delivered_at=timezone.now() - timedelta(days=7),
        carrier="顺丰速运",
        tracking_number="SF1234567890123",
    )
    OrderLineFactory(
        order=shipped,
        sku="DW-60",
        product_name="洗碗机 Dishwasher",
        quantity=2,
        unit_price_amount=Decimal("299.00"),
    )
    _order(wang_fang, "SO20261201", days_ago=1, paid_amount=Decimal("100.00"))
    _order(
        wang_fang,
        "US-7001",
        days_ago=3,
        currency="USD",
        total_amount=Decimal("20.00"),
        paid_amount=Decimal("20.00"),
    )
    ticket = _ticket(wang_fang)

    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    card = page[page.index('id="customer-card"') :]
    assert "wang.fang@example.cn" in card
    assert "o6_bmjrPTlm6_2sgVt7hMZOPfL2M" in card and "(Acme 公众号)" in card
    assert '<span class="badge vip">VIP</span>' in card
    # Paid minus refunded, one line per currency: 598 - 50 + 100 yuan, and 20 dollars apart.
    assert '<span class="ltv" data-currency="CNY">CN¥648.00</span>' in card
    assert '<span class="ltv" data-currency="USD">$20.00</span>' in card
    assert '<dd class="order-count">3</dd>' in card
    # Newest first, with lines, amounts and shipping.
    assert card.index("SO20261201") < card.index("US-7001") < card.index("SO20261105")
    assert "2 × 洗碗机 Dishwasher" in card and "DW-60" in card
    assert "refunded CN¥50.00" in card
    assert "顺丰速运" in card and "SF1234567890123" in card
    assert "delivered" in card


def test_the_linked_order_is_marked_and_can_be_unlinked(agent_li, wang_fang, published):
    order = _order(wang_fang, "SO20261105", days_ago=2)
    _order(wang_fang, "SO20261201", days_ago=1)
    ticket = _ticket(wang_fang, order=order)
    client = login(agent_li)
    card = client.get(f"/tickets/{ticket.number}/").content.decode()
    linked = card[card.index('data-order="SO20261105"') :]
    assert linked.index("Linked to this ticket") < linked.index("Unlink") < linked.index("</li>")
    other = card[card.index('data-order="SO20261201"') :]
    assert other.index("Link to this ticket") < other.index("</li>")

    response = client.post(f"/tickets/{ticket.number}/order/unlink/", follow=True)
    assert "is linked to no order now" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.order is None
    event = AuditEvent.objects.get(action=AuditKind.TICKET_ORDER_UNLINKED)
    assert (event.actor, event.changes["order"]) == (agent_li, ["SO20261105", None])
    assert ("ticket.updated", {"ticket": ticket.number, "order": None}) in published


def test_an_agent_links_one_of_the_customers_orders_from_the_card(agent_li, wang_fang, published):
    order = _order(wang_fang, "SO20261105", days_ago=2, tracking_number="SF99887766554")
    ticket = _ticket(wang_fang)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/order/link/", {"order": "SO20261105"}, follow=True
    )
    page = response.content.decode()
    assert f"Order SO20261105 is linked to ticket #{ticket.number}." in page
    assert "belongs to another customer" not in page
    ticket.refresh_from_db()
    assert ticket.order == order
    event = AuditEvent.objects.get(action=AuditKind.TICKET_ORDER_LINKED)
    assert (event.actor, event.changes["order"]) == (agent_li, [None, "SO20261105"])
    assert ("ticket.updated", {"ticket": ticket.number, "order": "SO20261105"}) in published
    # Search finds the ticket by the linked order's tracking number from now on.
    assert list(search.matching(Ticket.objects.all(), "SF99887766554")) == [ticket]


def test_another_customers_order_may_be_linked_and_the_card_says_whose(agent_li, wang_fang):
    someone_else = CustomerFactory(name="李伟", email="li.wei@example.cn")
    gift = _order(someone_else, "SO-GIFT-2026", days_ago=5)
    ticket = _ticket(wang_fang)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/order/link/", {"order": " #SO-GIFT-2026 "}, follow=True
    )
    page = response.content.decode()
    assert "Order SO-GIFT-2026 belongs to another customer: 李伟." in page
    card = page[page.index('id="customer-card"') :]
    assert "Linked order" in card and 'data-order="SO-GIFT-2026"' in card
    ticket.refresh_from_db()
    assert ticket.order == gift


def test_an_unknown_or_other_merchants_order_number_is_refused_with_a_reason(
    agent_li, wang_fang, tenant_globex, acting_as
):
    with acting_as(tenant_globex):
        OrderFactory(customer=CustomerFactory(name="Jane"), number="GX-100200", currency="USD")
    ticket = _ticket(wang_fang)
    client = login(agent_li)
    for number, reason in (("GX-100200", "no order GX-100200"), ("", "Enter an order number")):
        response = client.post(f"/tickets/{ticket.number}/order/link/", {"order": number})
        assert response.status_code == 400
        assert reason in response.json()["message"]
    # A page form shows the reason on the page it came from.
    response = client.post(
        f"/tickets/{ticket.number}/order/link/",
        {"order": "nope-0000"},
        HTTP_REFERER=f"http://testserver/tickets/{ticket.number}/",
        follow=True,
        **HTML,
    )
    assert "This merchant has no order nope-0000" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.order is None
    assert not AuditEvent.objects.filter(action=AuditKind.TICKET_ORDER_LINKED).exists()


def test_an_agent_outside_the_tickets_group_cannot_link_its_order(agent_li, wang_fang):
    order = _order(wang_fang, "SO20261105", days_ago=2)
    ticket = _ticket(wang_fang)
    Ticket.objects.filter(pk=ticket.pk).update(group=Group.objects.create(name="VIP desk"))
    client = login(agent_li)
    assert (
        client.post(f"/tickets/{ticket.number}/order/link/", {"order": order.number}).status_code
        == 404
    )
    assert client.post(f"/tickets/{ticket.number}/order/unlink/").status_code == 404
    ticket.refresh_from_db()
    with pytest.raises(PermissionDenied):
        orders.link_order_to_ticket(acting_agent=acting(agent_li), ticket=ticket, order=order)
    ticket.refresh_from_db()
    assert ticket.order is None


def test_another_merchants_ticket_is_404(globex_agent_li, wang_fang):
    ticket = _ticket(wang_fang)
    client = login(globex_agent_li)
    assert client.post(f"/tickets/{ticket.number}/order/link/", {"order": "x"}).status_code == 404


def test_the_card_lists_the_newest_ten_orders_and_links_to_the_rest(agent_li, wang_fang):
    for n in range(12):
        _order(wang_fang, f"SO2026{n:04d}", days_ago=n + 1)
    ticket = _ticket(wang_fang)
    card = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    card = card[card.index('id="customer-card"') :]
    assert "SO20260009" in card and "SO20260010" not in card
    assert "2 older orders on the customer's page" in card
    assert '<dd class="order-count">12</dd>' in card


def _page_queries(client, ticket: Ticket) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/tickets/{ticket.number}/").status_code == 200
    return len(queries)


def test_the_ticket_page_reads_the_card_in_a_fixed_number_of_queries(
    agent_li, wang_fang, django_assert_max_num_queries
):
    first = _order(wang_fang, "SO-FIRST-0001", days_ago=400)
    OrderLineFactory(order=first)
    ticket = _ticket(wang_fang, order=first)
    client = login(agent_li)
    client.get(f"/tickets/{ticket.number}/")  # sessions, caches and the like warmed up
    with_one_order = _page_queries(client, ticket)

    for n in range(30):
        order = _order(wang_fang, f"SO-MANY-{n:04d}", days_ago=n)
        for _ in range(3):
            OrderLineFactory(order=order)
    # The linked order is no longer among the ten shown: it is read on its own, with its lines;
    # and a history longer than the card is added up by a query (a short one, in Python).
    with django_assert_max_num_queries(with_one_order + 3):
        page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert "SO-FIRST-0001" in page and "SO-MANY-0009" in page


def test_the_customer_page_lists_their_orders_and_lifetime_value(supervisor_wang, wang_fang):
    _order(wang_fang, "SO20261105", days_ago=2, paid_amount=Decimal("299.00"))
    page = login(supervisor_wang).get(f"/tickets/customers/{wang_fang.pk}/").content.decode()
    assert 'data-order="SO20261105"' in page
    assert '<span class="ltv" data-currency="CNY">CN¥299.00</span>' in page
    assert "Merge with another customer" in page


def test_group_members_see_the_card_of_their_groups_tickets(agent_li, wang_fang):
    group = Group.objects.create(name="After-sales 售后")
    GroupMember.objects.create(group=group, user=agent_li)
    ticket = _ticket(wang_fang)
    Ticket.objects.filter(pk=ticket.pk).update(group=group)
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "wang.fang@example.cn" in page


def test_order_dates_are_shown_in_the_merchants_time_zone(agent_li, wang_fang, tenant_acme):
    from datetime import UTC, datetime

    # 20:00 in London on 5 November is already 6 November in Shanghai.
    _order(wang_fang, "SO20261105", days_ago=0)
    Order.objects.filter(number="SO20261105").update(
        placed_at=datetime(2026, 11, 5, 20, 0, tzinfo=UTC)
    )
    assert tenant_acme.time_zone == "Asia/Shanghai"
    ticket = _ticket(wang_fang)
    card = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert 'Placed <time datetime="2026-11-06T04:00:00+08:00">2026-11-06</time>' in card
