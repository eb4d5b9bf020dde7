"""In a real browser: an agent sees on the ticket page how much they may refund, grants a
refund within it, and sees the merchant's order system carry it out."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest

from escalation.models import EmpowermentPolicy, RemedyKind, RemedyLimit
from helpdesk import tenancy
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.channels_in.test_json_api import LocalServer
from tests.conftest import PASSWORD
from tests.factories import CustomerFactory, OrderFactory
from tickets.models import Ticket
from tickets.services import open_ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.skipif(
        importlib.util.find_spec("escalation.execution") is None,
        reason="escalation/execution.py (carrying remedies out) is not written yet",
    ),
]


@pytest.fixture
def order_system(allow_egress) -> Iterator[LocalServer]:
    """The merchant's order system: a local server that answers every remedy with 200."""
    server = LocalServer()
    allow_egress("127.0.0.1", server.port)
    server.thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.fixture
def refund_ticket(tenant_acme, agent_li, order_system) -> Ticket:
    """A ticket about a ¥299 order; agents may refund ¥100 per grant; remedies go to the order
    system. Written before the browser starts, so no database work runs beside Playwright's
    event loop."""
    with tenancy.activate(tenant_acme):
        EmpowermentPolicy.objects.create(execution_url=order_system.url("/remedies"))
        RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=RemedyKind.REFUND,
            currency="CNY",
            per_grant_max_amount=Decimal("100"),
        )
        customer = CustomerFactory(name="王芳")
        return open_ticket(
            acting_agent=SYSTEM,
            customer=customer,
            subject="油烟机漏油",
            channel="email",
            order=OrderFactory(customer=customer, number="SO20260815"),
        )


def test_agent_grants_a_refund_within_the_allowance_and_sees_it_executed(
    live_asgi_server,  # noqa: F811
    order_system,
    refund_ticket,
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
    page.fill("input[name=username]", "li.acme")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_asgi_server}/tickets/")

    ticket_page = f"{live_asgi_server}/tickets/{refund_ticket.number}/"
    page.goto(ticket_page)
    refund = page.locator("#remedies [data-step=refund]")
    assert "You can refund up to CN¥100.00 now" in refund.inner_text()

    form = page.locator("#remedies form.grant")
    form.locator("select[name=kind]").select_option("refund")
    form.locator("input[name=amount]").fill("80")
    form.locator("textarea[name=note]").fill("漏油，部分退款")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{ticket_page}#remedies")
    assert "Refund of CN¥80.00 granted." in page.locator(".messages").inner_text()

    page.reload()
    granted = page.locator("#remedies ul.granted > li")
    assert granted.count() == 1
    assert "CN¥80.00" in granted.inner_text()
    assert "Executed" in granted.locator(".badge").inner_text()
    # The order's rest (¥219) is more than a grant may be: ¥100 is still the most.
    assert "You can refund up to CN¥100.00 now" in refund.inner_text()
    assert len(order_system.seen) == 1
    assert b'"amount":"80.00"' in order_system.seen[0].body
    assert refused == []
