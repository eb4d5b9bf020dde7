"""In a real browser: a WeChat customer's push reaches the live server, and an agent answers the
ticket in the workspace; the answer reaches the (local) WeChat API as a Customer Service
Message."""

from __future__ import annotations

import os
import urllib.request

import pytest

from helpdesk import tenancy
from tests.browser import conftest as browser
from tests.browser.test_drafts import sign_in_on_ticket
from tests.channels_in import wechat_server
from tests.channels_in.wechat_server import inbound_path, push_url, signed_query, text_xml
from tickets.models import Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(browser.CHROMIUM), reason=f"no browser at {browser.CHROMIUM}"
    ),
]

# Fixtures of the browser and WeChat tests.
live_asgi_server = browser.live_asgi_server
chromium = browser.chromium
browser_page = browser.browser_page
_fresh_database_connection = browser._fresh_database_connection
acme_wechat = wechat_server.acme_wechat
wechat_api = wechat_server.wechat_api


@pytest.fixture(autouse=True)
def _plain_cookies(settings) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def test_an_agent_answers_a_wechat_customer_from_the_ticket_page(
    live_asgi_server, browser_page, agent_li, acme_wechat, wechat_api, tenant_acme
):
    url = live_asgi_server + push_url(inbound_path(acme_wechat), signed_query())
    request = urllib.request.Request(
        url, data=text_xml("洗碗机漏水，怎么办？"), headers={"Content-Type": "text/xml"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read() == b"success"
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()

    page = browser_page
    sign_in_on_ticket(page, live_asgi_server, "li.acme", ticket)
    assert "洗碗机漏水，怎么办？" in page.content()
    page.locator("form.reply textarea[name=text]").fill("您好，请先关闭水阀，我们安排上门。")
    with page.expect_navigation(timeout=30_000):
        page.locator("form.reply button[type=submit]").click()

    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
    assert reply.delivery_state == Message.Delivery.SENT
    assert wechat_api.sent == [
        {
            "touser": "oCustomer0001",
            "msgtype": "text",
            "text": {"content": "您好，请先关闭水阀，我们安排上门。"},
        }
    ]
    assert "您好，请先关闭水阀，我们安排上门。" in page.locator(f"#m{reply.pk}").inner_text()
