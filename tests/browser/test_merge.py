"""In a real browser: an agent links the customer's order from the card, merges the ticket into
the customer's other one, and the merged ticket's page leads to where the conversation went."""

from __future__ import annotations

import os

import pytest

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.browser.conftest import CHROMIUM, sign_in
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory
from tickets import services
from tickets.models import Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture(autouse=True)
def _plain_cookies(settings) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def _ticket(customer, subject: str, text: str) -> Ticket:
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=subject,
        body_text=text,
    )
    return ticket


def test_an_agent_links_an_order_from_the_card_and_merges_two_tickets(
    live_asgi_server, browser_page, agent_li, tenant_acme
):
    with tenancy.activate(tenant_acme):
        customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
        order = OrderFactory(customer=customer, number="SO20261105", tracking_number="SF10086")
        OrderLineFactory(order=order, product_name="洗碗机 Dishwasher", sku="DW-60")
        first = _ticket(customer, "洗碗机漏水", "洗碗机底部漏水。")
        second = _ticket(customer, "还是漏水", "昨天说的洗碗机还在漏水。")
    page = browser_page
    server = live_asgi_server
    sign_in(page, server, "li.acme")
    page.goto(f"{server}/tickets/{second.number}/")

    card_order = page.locator('#customer-card li.order[data-order="SO20261105"]')
    assert "洗碗机 Dishwasher" in card_order.inner_text()
    card_order.locator("button.link-order").click()
    page.wait_for_selector(f"text=Order SO20261105 is linked to ticket #{second.number}.")
    linked = page.locator('#customer-card li.order.linked[data-order="SO20261105"]')
    assert "Linked to this ticket" in linked.inner_text()

    page.fill("form.merge-ticket input[name=into]", str(first.number))
    page.click("form.merge-ticket button[type=submit]")
    confirm = page.locator("form.merge-confirm button[type=submit]")
    assert confirm.inner_text() == f"Merge #{second.number} into #{first.number}"
    confirm.click()
    page.wait_for_url(f"{server}/tickets/{first.number}/")
    page.wait_for_selector(f"text=Ticket #{second.number} is merged into #{first.number}.")
    assert page.locator("text=昨天说的洗碗机还在漏水。").count() == 1
    assert page.locator(f"text=Merged from #{second.number} (还是漏水)").count() == 1
    # The order came along: it is linked to the ticket the conversation continues on.
    assert page.locator('#customer-card li.order.linked[data-order="SO20261105"]').count() == 1

    page.goto(f"{server}/tickets/{second.number}/")
    banner = page.locator(".merged-banner")
    assert f"This ticket was merged into #{first.number}" in banner.inner_text()
    banner.locator("a").click()
    page.wait_for_url(f"{server}/tickets/{first.number}/")
    with tenancy.activate(tenant_acme):
        merged = Ticket.objects.get(pk=second.pk)
        assert (merged.status, merged.merged_into_id) == ("closed", first.pk)
