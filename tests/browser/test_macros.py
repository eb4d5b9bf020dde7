"""In a real browser: an agent picks a macro on a ticket with a linked order, and the reply box
holds the customer's name and the order's number at the cursor, kept as a draft."""

from __future__ import annotations

import os

import pytest

from helpdesk import tenancy
from tests.browser.test_drafts import mailed_ticket, sign_in_on_ticket  # noqa: F401
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.factories import OrderFactory
from tickets.models import Macro, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture(autouse=True)
def _plain_cookies(settings) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def test_an_agent_inserts_a_macro_filled_in_with_the_customer_and_order(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    acme_email,
    mailed_ticket,  # noqa: F811
    tenant_acme,
):
    with tenancy.activate(tenant_acme):
        order = OrderFactory(
            customer=mailed_ticket.customer, number="SO20261105", tracking_number="SF1234567890"
        )
        Ticket.objects.filter(pk=mailed_ticket.pk).update(order=order)
        macro = Macro.objects.create(
            name="物流查询 Where is my parcel",
            body="{{ customer.name }}您好，订单 {{ order.number }} 的运单号是 {{ order.tracking_number }}。",
        )
    page = browser_page
    sign_in_on_ticket(page, live_asgi_server, "li.acme", mailed_ticket)
    reply = page.locator("textarea[data-draft=reply]")
    reply.fill("开头。")
    page.select_option("select[data-macro-select]", str(macro.pk))
    page.wait_for_function(
        "() => document.querySelector('textarea[data-draft=reply]').value.includes('SO20261105')",
        timeout=10_000,
    )
    assert reply.input_value() == "开头。李伟您好，订单 SO20261105 的运单号是 SF1234567890。"
    # The picker is ready for the next one, and the inserted text is kept as the draft.
    assert page.locator("select[data-macro-select]").input_value() == ""
    page.wait_for_timeout(800)
    page.reload()
    page.wait_for_selector("textarea[data-draft=reply]")
    assert "SO20261105" in page.locator("textarea[data-draft=reply]").input_value()
    with tenancy.activate(tenant_acme):
        macro.refresh_from_db()
        assert macro.usage_count == 1
