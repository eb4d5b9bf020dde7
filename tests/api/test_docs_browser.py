"""In a real browser: the API reference at /api/docs/ renders every operation from our own
schema with our own script (the Content-Security-Policy would block anything else)."""

from __future__ import annotations

import os
import re

import pytest

from tests.browser.conftest import (  # noqa: F401
    CHROMIUM,
    browser_page,
    chromium,
    live_asgi_server,
    sign_in,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def test_the_api_reference_lists_the_operations_with_their_bodies(
    live_asgi_server,  # noqa: F811
    browser_page,  # noqa: F811
    agent_li,
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    blocked: list[str] = []
    browser_page.on("console", lambda message: blocked.append(message.text))
    sign_in(browser_page, live_asgi_server, "li.acme")

    browser_page.goto(f"{live_asgi_server}/api/docs/")
    operation = browser_page.locator(
        "details.api-operation", has_text="/api/v1/tickets/{number}/messages/"
    )
    operation.first.wait_for()
    assert browser_page.locator("details.api-operation").count() > 25
    post = browser_page.locator("details.api-operation").filter(
        has=browser_page.locator(
            "summary", has_text=re.compile(r"^POST /api/v1/tickets/\{number\}/messages/$")
        )
    )
    post.locator("summary").click()
    assert "MessageCreate" in post.inner_text()
    assert "kind" in post.inner_text() and "text" in post.inner_text()
    assert [text for text in blocked if "Content Security Policy" in text] == []
