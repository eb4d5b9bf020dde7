"""In a real browser: an agent's open page keeps them online, and the header's switch sets them
away."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection

from helpdesk import tenancy
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.conftest import PASSWORD
from tickets.models import AgentPresence

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

SWITCH = "select[data-presence-user]"


def presence_in_db(tenant, user) -> tuple[str, str] | None:
    # A fresh connection per look: after an earlier browser test's server teardown ended the
    # other backends, this thread's connection may be one of them.
    connection.close()
    with tenancy.activate(tenant):
        row = AgentPresence.objects.filter(user=user).first()
        return (row.status, row.chosen_status) if row else None


def wait_for_presence(tenant, user, expected: tuple[str, str], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while (found := presence_in_db(tenant, user)) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"presence is {found}, expected {expected} within {seconds} s")
        time.sleep(0.1)


def test_an_agents_open_page_puts_them_online_and_the_header_switch_sets_them_away(
    live_asgi_server,  # noqa: F811
    agent_li,
    tenant_acme,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    page = browser_page
    page.goto(f"{live_asgi_server}/login/")
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_asgi_server}/tickets/")

    # The page's socket sends a heartbeat: li is online, and the switch says so without a reload.
    wait_for_presence(tenant_acme, agent_li, ("online", "online"))
    page.wait_for_selector(f"{SWITCH}[data-state=online]", timeout=5_000)
    assert page.locator(SWITCH).input_value() == "online"

    with page.expect_navigation():
        page.select_option(SWITCH, "away")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    assert presence_in_db(tenant_acme, agent_li) == ("away", "away")
    assert page.url == f"{live_asgi_server}/tickets/"
    assert page.locator(SWITCH).input_value() == "away"
    # The reloaded page's heartbeat keeps what li chose.
    time.sleep(1)
    assert presence_in_db(tenant_acme, agent_li) == ("away", "away")
    assert page.locator(SWITCH).input_value() == "away"
