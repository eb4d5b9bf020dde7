"""In a real browser: the language an agent picks in the header is still theirs after signing
out and in again on a browser that never saw it, and "My profile" opens from their name."""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import CHROMIUM, browser_page, chromium, live_asgi_server  # noqa: F401
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def _sign_in(page, server: str) -> None:
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/")


def test_the_language_picked_in_the_header_follows_the_agent_to_a_new_browser(
    live_asgi_server,  # noqa: F811
    chromium,  # noqa: F811
    agent_li,
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = live_asgi_server
    page = chromium.new_page(locale="en-US")
    _sign_in(page, server)
    assert page.locator("html").get_attribute("lang") == "zh-hans"  # Acme works in Chinese

    with page.expect_navigation():
        page.select_option("form.lang select[name=language]", "en")
    assert page.locator("html").get_attribute("lang") == "en"
    with page.expect_navigation():
        page.click("form[action='/logout/'] button")

    other_browser = chromium.new_context(locale="zh-CN").new_page()
    _sign_in(other_browser, server)
    assert other_browser.locator("html").get_attribute("lang") == "en"
    assert other_browser.locator("header nav a").first.inner_text() == "Tickets"

    other_browser.set_viewport_size({"width": 390, "height": 844})
    other_browser.goto(f"{server}/profile/")
    assert other_browser.locator("#profile select[name=language]").input_value() == "en"
    scroll = other_browser.evaluate("document.documentElement.scrollWidth")
    assert scroll <= 390, "the profile page scrolls sideways on a phone"
