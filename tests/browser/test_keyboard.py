"""In a real browser: an agent works the list and a ticket from the keyboard."""

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


def focused(page, selector: str) -> bool:
    return page.evaluate(
        "(s) => !!document.activeElement && document.activeElement.matches(s)", selector
    )


def test_j_j_enter_opens_the_second_ticket_and_r_n_u_and_question_mark_do_what_they_say(
    live_asgi_server, browser_page, tenant_acme, agent_li, supervisor_wang, acme_email
):
    build_workspace(tenant_acme, agent_li, supervisor_wang, acme_email)
    page = browser_page
    sign_in(page, live_asgi_server, "li.acme")
    rows = page.locator("tr[data-nav-row]")
    assert rows.count() == 3
    second = rows.nth(1).locator("a[data-nav-open]").get_attribute("href")

    page.keyboard.press("j")
    assert "nav-selected" in rows.nth(0).get_attribute("class")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert "nav-selected" in rows.nth(1).get_attribute("class")
    assert "nav-selected" not in rows.nth(0).get_attribute("class")
    page.keyboard.press("x")
    assert rows.nth(1).locator("input[type=checkbox]").is_checked()
    page.keyboard.press("x")
    assert not rows.nth(1).locator("input[type=checkbox]").is_checked()

    # Letters typed into the search box are the search's, not shortcuts.
    page.locator("input[name=q]").first.type("jjk")
    assert "nav-selected" in rows.nth(1).get_attribute("class")
    page.keyboard.press("Escape")
    assert not focused(page, "input[name=q]")

    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_asgi_server}{second}")

    page.keyboard.press("r")
    assert focused(page, 'textarea[data-draft="reply"]')
    page.keyboard.type("nun")  # typed into the reply, not taken as n, u, n
    assert page.locator('textarea[data-draft="reply"]').input_value() == "nun"
    assert page.url == f"{live_asgi_server}{second}"
    page.keyboard.press("Escape")
    assert not focused(page, "textarea")
    page.keyboard.press("n")
    assert focused(page, 'textarea[data-draft="note"]')
    page.keyboard.press("Escape")

    help_box = page.locator("#keyboard-help")
    assert not help_box.is_visible()
    page.keyboard.press("?")
    assert help_box.is_visible()
    assert "Write a reply" in help_box.inner_text()
    page.keyboard.press("Escape")
    assert not help_box.is_visible()

    page.keyboard.press("Control+u")  # with a modifier: the browser's, not ours
    assert page.url == f"{live_asgi_server}{second}"
    page.keyboard.press("u")
    page.wait_for_url(f"{live_asgi_server}/tickets/")
