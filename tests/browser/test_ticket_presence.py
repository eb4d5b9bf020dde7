"""In a real browser: two agents on the same ticket see each other, and see each other type."""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import CHROMIUM, sign_in
from tests.browser.workspace_data import build_workspace

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture(autouse=True)
def _plain_cookies(settings) -> None:
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def open_ticket_page(chromium, server: str, username: str, number: int, language: str = "en"):
    page = chromium.new_context(locale="en-US").new_page()  # a browser of its own
    sign_in(page, server, username, language=language)
    page.goto(f"{server}/tickets/{number}/")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    return page


def test_two_agents_on_one_ticket_see_each_other_viewing_and_typing(
    live_asgi_server, chromium, tenant_acme, agent_li, supervisor_wang, acme_email
):
    ticket = build_workspace(tenant_acme, agent_li, supervisor_wang, acme_email).tickets[0]
    li = open_ticket_page(chromium, live_asgi_server, "li.acme", ticket.number)
    wang = open_ticket_page(chromium, live_asgi_server, "wang.acme", ticket.number, "zh-hans")
    li_sees = li.locator(".ticket-presence")
    wang_sees = wang.locator(".ticket-presence")

    li.wait_for_selector(".ticket-presence li", timeout=10_000)
    wang.wait_for_selector(".ticket-presence li", timeout=10_000)
    assert li_sees.inner_text() == "王主管 is viewing"
    assert wang_sees.inner_text() == "李娜 正在查看"

    wang.locator('textarea[data-draft="reply"]').type("您好，", delay=30)
    li.wait_for_selector(".ticket-presence li[data-state=typing]", timeout=10_000)
    assert li_sees.inner_text() == "王主管 is typing a reply"
    assert li.locator("#live-notice").is_hidden()  # presence is not a "something changed"
    # Typing stops: after a few seconds Wang is only viewing again.
    li.wait_for_selector(".ticket-presence li[data-state=viewing]", timeout=15_000)

    li.locator('textarea[data-draft="note"]').type("客户很着急", delay=30)
    wang.wait_for_selector(".ticket-presence li[data-state=typing]", timeout=10_000)
    assert wang_sees.inner_text() == "李娜 正在写备注"

    wang.close()  # Wang leaves: Li sees nobody else on the ticket
    li.wait_for_selector(".ticket-presence", state="hidden", timeout=10_000)


def test_the_second_agent_sees_the_first_and_is_held_back_from_a_stale_reply(
    live_asgi_server, chromium, tenant_acme, agent_li, supervisor_wang, acme_email
):
    ticket = build_workspace(tenant_acme, agent_li, supervisor_wang, acme_email).tickets[0]
    li = open_ticket_page(chromium, live_asgi_server, "li.acme", ticket.number)
    wang = open_ticket_page(chromium, live_asgi_server, "wang.acme", ticket.number)
    wang.wait_for_selector(".ticket-presence li", timeout=10_000)
    assert wang.locator(".ticket-presence").inner_text() == "李娜 is viewing"

    wang.locator('textarea[data-draft="reply"]').fill("We will send a technician.")
    li.locator('textarea[data-draft="reply"]').fill("A new dishwasher is on its way.")
    with li.expect_navigation():  # not ?sent=reply: drafts.js takes it off the address
        li.locator("form.reply button[type=submit]").click()

    # Wang's page was rendered before Li's reply: sending is held back, Li's reply is shown,
    # and Wang's text is still there to send anyway or change.
    wang.locator("form.reply button[type=submit]").click()
    wang.wait_for_selector(".collision", timeout=10_000)
    assert (
        "a colleague answered after you opened this ticket"
        in wang.locator(".collision").inner_text()
    )
    assert "A new dishwasher is on its way." in wang.locator(".collision").inner_text()
    assert (
        wang.locator('textarea[data-draft="reply"]').input_value() == "We will send a technician."
    )
    assert wang.locator("button.send-anyway").count() == 1
