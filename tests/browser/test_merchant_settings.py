"""In a real browser: an owner sets up the merchant in the product, and an agent sees the result.

The owner connects a mailbox whose connection test runs against real IMAP (pymap) and SMTP
(aiosmtpd) servers, rotates its inbound secret, creates a group, puts an agent in it, makes it
the default and promotes another agent. A mail posted with the new secret then becomes a
ticket, and the agent finds it in that group.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest
from django.db import connection

from helpdesk.models import Role
from tests.browser.test_live_updates import CHROMIUM, live_asgi_server  # noqa: F401
from tests.channels_in.imap_server import ImapServer
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_channel_settings import (  # noqa: F401
    SMTP_PASSWORD,
    SMTP_USER,
    imap_server,
    smtp_server,
)
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture
def chromium(monkeypatch) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own database calls
    # are still synchronous, so Django's async-safety check does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        # With a live server running, the test thread's database connection does not survive
        # the browser's launch (it is found closed by the server afterwards; seen when this
        # test runs after test_live_updates). Start this test's own queries on a fresh one.
        connection.close()
        yield browser
        browser.close()


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    # The sign-in form names its field "username" (or allauth's "login").
    page.fill("input[name=username], input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/tickets/")


def test_owner_sets_up_mail_groups_and_roles_and_the_agent_sees_the_ticket_in_the_new_group(
    live_asgi_server,  # noqa: F811
    chromium,
    imap_server: ImapServer,  # noqa: F811
    smtp_server,  # noqa: F811
    allow_egress,
    owner_chen,
    agent_li,
    tenant_acme,
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    base = live_asgi_server
    _inbox, smtp_port = smtp_server
    allow_egress("127.0.0.1", imap_server.port)
    allow_egress("127.0.0.1", smtp_port)
    zhou = UserFactory(username="zhou.acme")
    MembershipFactory(tenant=tenant_acme, user=zhou, role=Role.AGENT)

    # The owner works in English; Acme's agents see Chinese, the merchant's language.
    owner = chromium.new_context(locale="en-US")
    owner.add_cookies([{"name": "django_language", "value": "en", "url": base}])
    owner.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = owner.new_page()
    sign_in(page, base, "chen.acme")

    # Channels: connect the mailbox and test it against the real servers.
    page.click("header nav a:text-is('Settings')")
    page.wait_for_url(f"{base}/settings/channels/")
    page.click("text=Connect a mailbox")
    page.fill("input[name=name]", "Acme support")
    page.fill("input[name=address]", "support@acme.example")
    page.fill("input[name=from_name]", "Acme 家电")
    page.fill("input[name=imap_host]", "127.0.0.1")
    page.fill("input[name=imap_port]", str(imap_server.port))
    page.uncheck("input[name=imap_use_ssl]")
    page.fill("input[name=imap_username]", imap_server.username)
    page.fill("input[name=imap_password]", imap_server.password)
    page.fill("input[name=smtp_host]", "127.0.0.1")
    page.fill("input[name=smtp_port]", str(smtp_port))
    page.uncheck("input[name=smtp_use_tls]")
    page.fill("input[name=smtp_username]", SMTP_USER)
    page.fill("input[name=smtp_password]", SMTP_PASSWORD)
    page.click("button[name=save]")
    page.wait_for_selector("text=The mailbox support@acme.example is connected.")
    assert page.input_value("input[name=smtp_password]") == ""  # never sent back

    page.click("button[name=test-connection]")
    imap_result = page.wait_for_selector("li[data-server=imap]").inner_text()
    smtp_result = page.locator("li[data-server=smtp]").inner_text()
    assert imap_result.startswith("IMAP works: Signed in to 127.0.0.1"), imap_result
    assert smtp_result.startswith("SMTP works: Connected to 127.0.0.1"), smtp_result

    forwarding_address = page.inner_text("#forwarding-email")
    assert forwarding_address.startswith("acme+")
    assert forwarding_address.endswith("@inbound.localhost")
    page.click("button[data-copy='#forwarding-email']")
    page.wait_for_selector("button[data-copy='#forwarding-email'][data-copied=true]")
    assert page.evaluate("navigator.clipboard.readText()") == forwarding_address

    forwarding = page.inner_text("#webhook-url")
    assert forwarding.startswith(f"{base}/inbound/acme/email/")
    copy = page.locator("button[data-copy='#webhook-url']")
    copy.click()
    page.wait_for_selector("button[data-copy='#webhook-url'][data-copied=true]")
    assert copy.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == forwarding

    old_secret = page.inner_text("#inbound-secret")
    page.click("button[name=rotate-secret]")
    page.wait_for_selector("#previous-secret")
    new_secret = page.inner_text("#inbound-secret")
    assert new_secret and new_secret != old_secret

    # Groups: create one, put the agent in it, make it the default.
    page.click(".settings-nav a:text-is('Groups')")
    page.fill("#new-group-name", "售后 After-sales")
    page.click("button[name=create-group]")
    page.wait_for_selector("h1:has-text('售后 After-sales')")
    page.select_option("#group-add-person", label="li.acme")
    page.click("button[name=add-member]")
    page.wait_for_selector("text=li.acme is now in 售后 After-sales.")
    page.click("button[name=make-default]")
    page.wait_for_selector("text=New tickets now go to 售后 After-sales.")

    # Members: promote an agent to supervisor.
    page.click(".settings-nav a:text-is('Members')")
    row = page.locator("tr[data-person='zhou.acme']")
    row.locator("select[name=role]").select_option("supervisor")
    row.locator("button[name=change-role]").click()
    page.wait_for_selector("text=zhou.acme is now Supervisor.")

    # Everything the owner did is in the audit log, in words.
    page.click(".settings-nav a:text-is('Audit log')")
    log = page.inner_text("table.audit-log")
    for words in (
        "Channel connected",
        "Channel connection tested",
        "Channel inbound secret rotated",
        "Group created",
        "Default group changed",
        "Member role changed",
    ):
        assert words in log

    # The provider posts a customer's mail with the new secret.
    request = urllib.request.Request(
        forwarding,
        data=customer_mail(subject="洗碗机漏水了"),
        headers={"Content-Type": "message/rfc822", "X-Helpdesk-Secret": new_secret},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202

    # The agent signs in (in the merchant's Chinese) and finds the ticket in the new group.
    agent = chromium.new_context(locale="zh-CN").new_page()
    sign_in(agent, base, "li.acme")
    agent.click("table.tickets a:text-is('洗碗机漏水了')")
    agent.wait_for_selector("dt:text-is('客服组')")
    assert agent.inner_text("dt:text-is('客服组') + dd") == "售后 After-sales"
