"""In a real browser: an agent opens a missed call's ticket, is told a call has no text reply,
schedules a call-back that shows under "Call-backs due", then calls and logs the call, and the
call-back leaves the queue."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpdesk import tenancy
from tests.browser.conftest import CHROMIUM, browser_page, chromium, live_asgi_server, sign_in  # noqa: F401
from tests.channels_in.test_phone import corpus_form, phone_line, post_twilio, tickets_of
from tickets.models import Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture
def missed_call(tenant_acme: Any, agent_li: Any) -> Ticket:
    """A missed call's ticket, agent li's. Written before the browser starts, so no database
    work runs beside Playwright's event loop."""
    account = phone_line(tenant_acme)
    post_twilio(account, "voice", corpus_form("01_incoming_call"))
    post_twilio(account, "status", corpus_form("07_call_status_completed", CallStatus="busy"))
    [ticket] = tickets_of(tenant_acme)
    with tenancy.activate(tenant_acme):
        Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
    return ticket


def test_an_agent_schedules_a_call_back_sees_it_due_and_logs_the_call(
    live_asgi_server,  # noqa: F811
    missed_call,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server, page = live_asgi_server, browser_page
    sign_in(page, server, "li.acme")
    page.goto(f"{server}/tickets/{missed_call.number}/")
    assert "a call has no text channel back" in page.locator(".composer").inner_text()

    # A call-back for now, in the merchant's time (Asia/Shanghai), typed into the page.
    now = datetime.now(ZoneInfo(missed_call.tenant.time_zone)).strftime("%Y-%m-%dT%H:%M")
    form = page.locator("form.schedule-call-back")
    form.locator("input[name=due_at]").fill(now)
    form.locator("input[name=note]").fill("问上门时间")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{server}/tickets/{missed_call.number}/#calls")
    assert "Call-back scheduled" in page.locator(".messages").inner_text()
    assert "问上门时间" in page.locator("ul.call-backs").inner_text()

    page.goto(f"{server}/tickets/?view=call_backs")
    assert page.locator("a[data-nav-open]").all_inner_texts() == [missed_call.subject]

    page.goto(f"{server}/tickets/{missed_call.number}/")
    log = page.locator("form.log-call")
    assert log.locator("input[name=number]").input_value() == "+8613800138000"
    log.locator("select[name=outcome]").select_option("answered")
    log.locator("input[name=minutes]").fill("3")
    log.locator("textarea[name=notes]").fill("约好明天上午上门。")
    log.locator("button[type=submit]").click()
    page.wait_for_url(f"{server}/tickets/{missed_call.number}/#calls")
    assert "Called +86 138 0013 8000: talked, 3:00." in page.locator(".conversation").inner_text()
    assert "Done" in page.locator("ul.call-backs").inner_text()
    page.goto(f"{server}/tickets/?view=call_backs")
    assert page.locator("a[data-nav-open]").all_inner_texts() == []
