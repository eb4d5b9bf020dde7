"""In a real browser: an agent's open ticket list hears about a new customer email at once."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.channels_in.mails import customer_mail
from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("HELPDESK_CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_asgi_server(settings) -> Iterator[str]:
    """The real ASGI application (HTTP and WebSockets) under uvicorn, on the test database."""
    import uvicorn

    settings.WHITENOISE_USE_FINDERS = True  # serve static files without collectstatic
    settings.WHITENOISE_AUTOREFRESH = True

    from helpdesk.asgi import application

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    # A socket the server dropped may have left the channel layer waiting in the server's
    # event loop, which is gone: later tests get a layer of their own.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    # The server's worker threads kept their database connections; end them so the test
    # database can be dropped.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def browser_page(monkeypatch) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own database calls
    # are still synchronous, so Django's async-safety check does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        # With Playwright's event loop running, Django gives this thread another connection
        # than without it; an earlier test's server teardown may have ended either: start both
        # afresh (tests/browser/conftest.py closes the other).
        from django.db import connection

        connection.close()
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(locale="en-US")
        yield page
        browser.close()


def test_a_new_email_appears_live_on_the_agents_ticket_list(
    live_asgi_server, browser_page, agent_li, acme_email, settings
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

    notice = page.wait_for_selector("#live-notice:not([hidden])", timeout=10_000)
    assert "洗碗机漏水" in notice.inner_text()
    notice.click()
    page.wait_for_selector("text=洗碗机漏水", timeout=10_000)
    assert page.locator("table.tickets a", has_text="洗碗机漏水").count() == 1
