"""In a real browser: an agent's unsent reply survives a live update and a reload, and a reply
written before a colleague answered is held back with the colleague's answer shown."""

from __future__ import annotations

import os
import urllib.request

import pytest

from helpdesk import tenancy
from helpdesk.models import Membership
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.channels_in.mails import customer_mail
from tests.conftest import PASSWORD, acting
from tickets import services
from tickets.models import Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

DRAFT = "您好，我们已经安排师傅明天上门。"


def deliver_mail(server: str, account, payload: bytes) -> None:
    """The mail provider posts to the running server, as in production."""
    request = urllib.request.Request(
        f"{server}/inbound/acme/email/{account.pk}/",
        data=payload,
        headers={"Content-Type": "message/rfc822", "X-Helpdesk-Secret": account.inbound_secret},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def sign_in_on_ticket(page, server: str, username: str, ticket: Ticket) -> None:
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/")
    page.goto(f"{server}/tickets/{ticket.number}/")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)


@pytest.fixture
def mailed_ticket(live_asgi_server, acme_email, tenant_acme) -> Ticket:  # noqa: F811
    deliver_mail(live_asgi_server, acme_email, customer_mail(message_id="<q1@example.cn>"))
    with tenancy.activate(tenant_acme):
        return Ticket.objects.get()


@pytest.fixture(autouse=True)
def _plain_cookies(
    settings,
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def test_an_unsent_draft_survives_a_live_update_and_a_reload_and_is_forgotten_once_sent(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    acme_email,
    mailed_ticket,
    tenant_acme,
):
    page = browser_page
    sign_in_on_ticket(page, live_asgi_server, "li.acme", mailed_ticket)
    reply = page.locator("textarea[data-draft=reply]")
    reply.fill(DRAFT)
    page.locator("textarea[data-draft=note]").fill("客户很着急")

    deliver_mail(
        live_asgi_server,
        acme_email,
        customer_mail(body="还有，灯也不亮了。", in_reply_to="<q1@example.cn>"),
    )
    notice = page.wait_for_selector("#live-notice:not([hidden])", timeout=10_000)
    assert f"New message on #{mailed_ticket.number}" in notice.inner_text()
    notice.click()
    page.wait_for_selector("text=还有，灯也不亮了。", timeout=10_000)
    assert reply.input_value() == DRAFT
    assert page.locator("textarea[data-draft=note]").input_value() == "客户很着急"

    page.reload()
    assert reply.input_value() == DRAFT

    page.click("form.reply button[type=submit]")
    page.wait_for_selector("text=Reply sent.", timeout=10_000)
    assert page.url == f"{live_asgi_server}/tickets/{mailed_ticket.number}/"  # marker gone
    assert reply.input_value() == ""
    assert page.locator("textarea[data-draft=note]").input_value() == "客户很着急"
    page.reload()
    assert reply.input_value() == ""
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(direction="outbound", body_text=DRAFT).count() == 1


def test_a_stale_reply_is_held_back_in_the_browser_until_sent_anyway(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    supervisor_wang,
    mailed_ticket,
    tenant_acme,
):
    Membership.objects.filter(user=supervisor_wang).update(display_name="王主管")
    page = browser_page
    sign_in_on_ticket(page, live_asgi_server, "li.acme", mailed_ticket)
    page.locator("textarea[data-draft=reply]").fill(DRAFT)
    with tenancy.activate(tenant_acme):
        services.reply_to_customer(
            acting_agent=acting(supervisor_wang), ticket=mailed_ticket, text="已经退款了。"
        )

    page.click("form.reply button[type=submit]")
    warning = page.wait_for_selector(".collision", timeout=10_000)
    assert "王主管 replied" in warning.inner_text() and "已经退款了。" in warning.inner_text()
    assert page.locator("textarea[data-draft=reply]").input_value() == DRAFT
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(body_text=DRAFT).exists()

    page.click("button.send-anyway")
    page.wait_for_selector("text=Reply sent.", timeout=10_000)
    assert page.locator(".collision").count() == 0
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(direction="outbound", body_text=DRAFT).count() == 1
