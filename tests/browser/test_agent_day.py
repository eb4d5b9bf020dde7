"""In a real browser, one conversation from arrival to solved, as an agent works it: a new
email appears live on the list, the agent takes it, links the customer's order, answers with a
macro and a file, adds an internal note and solves the ticket; the history tells it all."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from helpdesk import tenancy
from tests.browser.conftest import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.browser.test_drafts import deliver_mail
from tests.channels_in.mails import customer_mail
from tests.conftest import PASSWORD
from tests.factories import OrderFactory
from tickets.models import Customer, Macro, Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

RECEIPT = b"%PDF-1.4\nreceipt of order SO-8812\n"


@pytest.fixture(autouse=True)
def _plain_cookies_and_media(
    settings,
    tmp_path,
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path)


def test_an_agent_takes_a_new_email_and_answers_it_to_solved(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    acme_email,
    tenant_acme,
):
    server, page = live_asgi_server, browser_page
    with tenancy.activate(tenant_acme):
        Macro.objects.create(
            name="Order on its way",
            body="Hello {{ customer.name }}, order {{ order.number }} left our warehouse.",
        )
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)

    # A customer writes while the agent watches the list: the row arrives without a reload.
    deliver_mail(
        server,
        acme_email,
        customer_mail(subject="Where is my dishwasher?", body="Order SO-8812, ordered last week."),
    )
    row = page.locator("tr[data-nav-row]", has_text="Where is my dishwasher?")
    row.wait_for(timeout=10_000)
    assert page.locator("[data-count=unassigned]").inner_text() == "1"
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
        customer = Customer.objects.get()
        OrderFactory(customer=customer, number="SO-8812")

    row.locator("a[data-nav-open]").click()
    page.wait_for_url(f"{server}/tickets/{ticket.number}/")
    page.click("button:has-text('Take it')")
    page.wait_for_load_state()
    assert "li.acme" in page.locator(".assignee").inner_text()

    page.fill("form.link-order input[name=order]", "SO-8812")
    page.click("form.link-order button[type=submit]")
    page.wait_for_load_state()

    page.locator("[data-macro-select]").select_option(label="Order on its way")
    reply_box = page.locator("textarea[data-draft=reply]")
    expect(reply_box).to_have_value(
        f"Hello {customer.name}, order SO-8812 left our warehouse.", timeout=10_000
    )
    page.locator("form.reply input[name=attachments]").set_input_files(
        [{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": RECEIPT}]
    )
    # Not wait_for_url(...?sent=reply): drafts.js takes the marker off the address once read.
    with page.expect_navigation():
        page.locator("form.reply button[type=submit]").click()

    page.fill("textarea[data-draft=note]", "Carrier says it arrives Friday.")
    with page.expect_navigation():
        page.click("form.note button[type=submit]")

    page.locator("form[action$='/status/'] select[name=status]").select_option("solved")
    page.locator("form[action$='/status/'] button[type=submit]").click()
    page.wait_for_load_state()

    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert (ticket.status, ticket.assignee, ticket.order.number) == (
            "solved",
            agent_li,
            "SO-8812",
        )
        reply = Message.objects.get(direction="outbound")
        assert reply.body_text.startswith(f"Hello {customer.name}, order SO-8812")
        assert [a.filename for a in reply.attachments.all()] == ["receipt.pdf"]
        assert Message.objects.filter(direction="note", body_text__startswith="Carrier").exists()
    history = page.locator("aside").inner_text()
    for event in ("Replied on Email", "Internal note added", "Order SO-8812 linked"):
        assert event in history, event
    assert page.locator(f"#m{reply.pk} ul.attachments", has_text="receipt.pdf").count() == 1
