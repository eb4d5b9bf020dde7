"""In a real browser: from a ticket, the agent opens the customer's page and reads one timeline of
their mail, their app messages and what they did, and the page breaks none of its own rules
(no inline script or style the Content-Security-Policy would refuse)."""

from __future__ import annotations

import os

import pytest

from channels_in import pipeline
from channels_in.base import Envelope
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.channels_in.mails import customer_mail
from tests.conftest import PASSWORD
from tests.tickets.test_customer_timeline import ADDRESS, acme_api, api_message, subscribed  # noqa: F401
from tickets.models import Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture
def mail_ticket(agent_li, acme_email, acme_api) -> Ticket:  # noqa: F811
    """A customer who wrote by mail and through the merchant's app, and subscribed: written
    before the browser starts, so no database work runs beside Playwright's event loop."""
    pipeline.receive(
        account=acme_email,
        envelope=Envelope.of(
            customer_mail(sender=f"王芳 <{ADDRESS}>", subject="吸油烟机噪音很大", body="噪音很大")
        ),
        source="webhook",
    )
    api_message(acme_api, external_id="m-1", text="我的订单什么时候发货？")
    subscribed(acme_api, plan="VIP 会员")
    return Ticket.objects.get(channel="email")


def test_agent_goes_from_a_ticket_to_the_customers_timeline(
    live_asgi_server,  # noqa: F811
    mail_ticket,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    page = browser_page
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_asgi_server}])
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(f"{live_asgi_server}/login/")
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_asgi_server}/tickets/")

    page.goto(f"{live_asgi_server}/tickets/{mail_ticket.number}/")
    page.click(".sidebar a:text-is('王芳')")
    page.wait_for_url(f"{live_asgi_server}/tickets/customers/{mail_ticket.customer_id}/")
    entries = page.locator("ol.timeline > li")
    assert entries.count() == 3
    # Newest first, each with its channel.
    assert "Subscribed" in entries.nth(0).inner_text()
    assert "VIP 会员" in entries.nth(0).inner_text()
    assert "API (Acme 商城 App)" in entries.nth(1).inner_text()
    assert "我的订单什么时候发货？" in entries.nth(1).inner_text()
    assert "噪音很大" in entries.nth(2).inner_text()
    assert "Email (Acme support)" in entries.nth(2).inner_text()
    # The event's details sit in two columns, the stylesheet's doing.
    details = page.locator("dl.event-data")
    assert details.evaluate("e => getComputedStyle(e).display") == "grid"
    assert refused == []
