"""What browser tests share: the real ASGI server on the test database, Debian's chromium, a
signed-in page, and one rule: each test starts on a fresh database connection.

A browser test's live server is torn down by ending the database backends its worker threads
opened (``live_asgi_server``), and this thread's connection as the Playwright event loop saw it
can be among them: a later test would find it closed under it.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("HELPDESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(autouse=True)
def _fresh_database_connection() -> None:
    connection.close()


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

    from helpdesk import asgi

    # The middleware reads WhiteNoise's settings when it is built: a test that imported the
    # ASGI module earlier in the run (the chat consumer's) built it without the finders, and
    # every static file was a 404. A fresh application reads them now.
    application = importlib.reload(asgi).application

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
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def chromium(monkeypatch) -> Iterator[object]:
    """Debian's chromium under Playwright; pages and contexts come from it (never a download)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own database calls
    # are still synchronous, so Django's async-safety check does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        # With Playwright's event loop running, Django gives this thread another connection
        # than without it; an earlier test's server teardown may have ended either: start both
        # afresh (``_fresh_database_connection`` closes the other).
        connection.close()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium) -> Iterator[object]:
    yield chromium.new_page(locale="en-US")


def sign_in(page, server: str, username: str, *, language: str = "en") -> None:
    """Sign ``username`` in on ``page``, reading ``language`` (a django_language cookie)."""
    page.context.add_cookies([{"name": "django_language", "value": language, "url": server}])
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/")
