"""In a real browser: a supervisor sees a ticket waiting in its group's queue, gives it to an
agent, and sees it leave the queue."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.conftest import PASSWORD
from tests.factories import CustomerFactory
from tickets.models import Group, GroupMember, Ticket
from tickets.services import open_ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


@pytest.fixture
def waiting_ticket(tenant_acme: Any, supervisor_wang: Any, agent_li: Any) -> Ticket:
    """A ticket that has waited 12 minutes in after-sales, whose only agent (li) is offline so
    nobody takes it. Written before the browser starts, so no database work runs beside
    Playwright's event loop."""
    with tenancy.activate(tenant_acme):
        group = Group.objects.create(name="售后 After-sales", is_default=True)
        GroupMember.objects.create(group=group, user=agent_li)
        ticket = open_ticket(
            acting_agent=SYSTEM,
            customer=CustomerFactory(name="王芳", is_vip=True),
            subject="洗碗机不出水",
            channel="email",
        )
        Ticket.objects.filter(pk=ticket.pk).update(
            group=group, queued_at=timezone.now() - timedelta(minutes=12)
        )
        return ticket


def test_supervisor_gives_a_waiting_ticket_to_an_agent_and_it_leaves_the_queue(
    live_asgi_server,  # noqa: F811
    waiting_ticket,
    agent_li,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    page = browser_page
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_asgi_server}])
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(f"{live_asgi_server}/login/")
    page.fill("input[name=username]", "wang.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_asgi_server}/tickets/")

    page.click("nav >> text=Queues")
    page.wait_for_url(f"{live_asgi_server}/tickets/queues/")
    row = page.locator(f"table.queue-tickets tr[data-ticket='{waiting_ticket.number}']")
    assert "洗碗机不出水" in row.inner_text()
    assert "VIP" in row.inner_text()
    assert row.locator("td.waited").inner_text() == "12m"
    assert page.locator("table.queue-overview td.waiting-count").first.inner_text() == "1"

    row.locator("select[name=assignee]").select_option(str(agent_li.pk))
    row.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_asgi_server}/tickets/queues/")
    assert (
        f"Ticket #{waiting_ticket.number} given to li.acme."
        in page.locator(".messages").inner_text()
    )
    assert page.locator(f"tr[data-ticket='{waiting_ticket.number}']").count() == 0
    assert page.locator("table.queue-overview td.waiting-count").first.inner_text() == "0"
    assert refused == []
