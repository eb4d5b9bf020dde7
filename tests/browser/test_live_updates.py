"""In a real browser: an agent's open ticket list hears about a new customer email at once."""

from __future__ import annotations

import os
import urllib.request

import pytest

from tests.browser.conftest import (  # noqa: F401 (fixtures other browser tests import from here)
    CHROMIUM,
    browser_page,
    free_port,
    live_asgi_server,
)
from tests.channels_in.mails import customer_mail
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def test_a_new_email_appears_live_on_the_agents_ticket_list(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    acme_email,
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    page = browser_page
    page.goto(f"{live_asgi_server}/login/")
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_asgi_server}/tickets/")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    assert page.locator("table.tickets a").count() == 0
    assert page.locator("#live-status").inner_text() == "在线"  # Acme works in Chinese

    # The mail provider posts to the running server, as in production.
    request = urllib.request.Request(
        f"{live_asgi_server}/inbound/acme/email/{acme_email.pk}/",
        data=customer_mail(subject="洗碗机漏水"),
        headers={"Content-Type": "message/rfc822", "X-Helpdesk-Secret": acme_email.inbound_secret},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202

    # The list refreshes its rows and counts in place (data-live-section): no notice to click.
    page.wait_for_selector("table.tickets a:has-text('洗碗机漏水')", timeout=10_000)
    assert page.locator("table.tickets a", has_text="洗碗机漏水").count() == 1
    assert page.locator("#live-notice").is_hidden()
    assert page.locator("[data-count=unassigned]").inner_text() == "1"
