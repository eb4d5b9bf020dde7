"""In a real browser: the agents' pages fit a phone (390 px) and a laptop (1366x768), in English
and in Chinese, with no page scrolling sideways, long words and addresses included."""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import CHROMIUM, sign_in
from tests.browser.workspace_data import build_workspace

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture(autouse=True)
def _plain_cookies(settings) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_list_a_ticket_the_customer_and_the_queues_fit_a_phone_and_a_laptop(
    live_asgi_server, chromium, tenant_acme, agent_li, supervisor_wang, acme_email, language
):
    workspace = build_workspace(tenant_acme, agent_li, supervisor_wang, acme_email)
    ticket = workspace.tickets[0]
    pages = {
        "ticket list": "/tickets/",
        "ticket": f"/tickets/{ticket.number}/",
        "customer": f"/tickets/customers/{workspace.customer.pk}/",
        "queues": "/tickets/queues/",
    }
    page = chromium.new_page(locale="en-US", viewport=PHONE)
    sign_in(page, live_asgi_server, "wang.acme", language=language)
    for viewport in (PHONE, LAPTOP):
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            response = page.goto(f"{live_asgi_server}{path}")
            assert response.status == 200, (name, response.status)
            page.wait_for_load_state("load")
            scroll_width, width = page.evaluate(SIDEWAYS)
            assert scroll_width <= width, f"{name} at {viewport} in {language}: {scroll_width} px"

    # On the phone the ticket's sidebar follows the conversation instead of sitting beside it.
    page.set_viewport_size(PHONE)
    page.goto(f"{live_asgi_server}/tickets/{ticket.number}/")
    conversation = page.locator("section.conversation").bounding_box()
    sidebar = page.locator("aside.sidebar").bounding_box()
    assert sidebar["y"] >= conversation["y"] + conversation["height"]
    assert sidebar["x"] + sidebar["width"] <= PHONE["width"]
    # The header folds behind "Menu"; it opens on a tap.
    tickets_link = page.locator("#topnav a").first
    assert not tickets_link.is_visible()
    page.click(".menu-toggle")
    assert tickets_link.is_visible()
    assert page.evaluate(SIDEWAYS)[0] <= PHONE["width"]


def test_the_ticket_list_shows_each_ticket_as_a_card_on_a_phone(
    live_asgi_server, chromium, tenant_acme, agent_li, supervisor_wang, acme_email
):
    build_workspace(tenant_acme, agent_li, supervisor_wang, acme_email)
    page = chromium.new_page(locale="en-US", viewport=PHONE)
    sign_in(page, live_asgi_server, "li.acme")
    rows = page.locator("tr[data-nav-row]")
    assert rows.count() == 3
    # Each card holds its subject in full width of the phone, and nothing overflows it.
    for i in range(3):
        box = rows.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        subject = rows.nth(i).locator("a[data-nav-open]").bounding_box()
        assert subject["x"] + subject["width"] <= box["x"] + box["width"]
    assert not page.locator("table.tickets thead").is_visible()
