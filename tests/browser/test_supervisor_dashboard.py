"""In real browsers: an agent's refund past their limit reaches the supervisor's dashboard at
once, as a request to decide and as one more escalation on the chart; the supervisor approves it
there and the agent's ticket page shows the refund approved, neither page reloaded."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import pytest

from escalation.models import RemedyKind, RemedyLimit
from helpdesk import tenancy
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.browser.test_live_updates import CHROMIUM, browser_page, live_asgi_server  # noqa: F401
from tests.conftest import PASSWORD
from tests.factories import CustomerFactory, OrderFactory
from tickets.models import ReasonCode, Ticket
from tickets.services import open_ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]

LAST_POINT = "Chart.getChart('rate-chart').data.datasets[0].data.at(-1)"


@pytest.fixture
def complaint_ticket(tenant_acme, agent_li, supervisor_wang) -> Ticket:
    """A complaint ticket about a ¥299 order; agents may refund ¥100 per grant, supervisors
    ¥500. Written before the browsers start, so no database work runs beside Playwright's
    event loop."""
    with tenancy.activate(tenant_acme):
        ReasonCode.objects.create(code="damaged", label="到货破损", is_complaint=True)
        for role, most in ((Role.AGENT, "100"), (Role.SUPERVISOR, "500")):
            RemedyLimit.objects.create(
                role=role,
                kind=RemedyKind.REFUND,
                currency="CNY",
                per_grant_max_amount=Decimal(most),
            )
        customer = CustomerFactory(name="王芳")
        ticket = open_ticket(
            acting_agent=SYSTEM,
            customer=customer,
            subject="油烟机到货破损",
            channel="email",
            order=OrderFactory(customer=customer, number="SO20261130"),
        )
        Ticket.objects.filter(pk=ticket.pk).update(reason_code="damaged")
        return ticket


def wait_until(page, expression: str, timeout: float = 10) -> None:
    """Wait until ``expression`` is true in the page. (Playwright's wait_for_function polls
    with eval, which the pages' Content-Security-Policy rightly refuses.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)


def sign_in(page, server: str, username: str) -> None:
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/")


def test_a_refund_past_the_limit_is_approved_live_from_the_dashboard(
    live_asgi_server,  # noqa: F811
    complaint_ticket,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = live_asgi_server
    agent = browser_page
    supervisor = agent.context.browser.new_context(locale="en-US").new_page()
    refused: list[str] = []
    for page in (agent, supervisor):
        page.on(
            "console", lambda m: refused.append(m.text) if "Content Security" in m.text else None
        )

    sign_in(supervisor, server, "wang.acme")
    supervisor.goto(f"{server}/supervisor/")
    supervisor.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    assert "Nothing waits for approval." in supervisor.locator("#dashboard-approvals").inner_text()
    assert supervisor.evaluate(f"{LAST_POINT}.complaints") == 1
    assert supervisor.evaluate(f"{LAST_POINT}.escalated") == 0
    supervisor.evaluate("window.notReloaded = true")

    sign_in(agent, server, "li.acme")
    ticket_page = f"{server}/tickets/{complaint_ticket.number}/"
    agent.goto(ticket_page)
    agent.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    form = agent.locator("#remedies form.grant")
    form.locator("select[name=kind]").select_option("refund")
    form.locator("input[name=amount]").fill("150")
    form.locator("textarea[name=note]").fill("到货破损，客户要求退 150")
    form.locator("button[type=submit]").click()
    agent.wait_for_url(f"{ticket_page}#remedies")
    asked = agent.locator("#remedies .approval-requests > li")
    assert "Waiting for approval" in asked.inner_text()
    agent.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    agent.evaluate("window.notReloaded = true")

    # The supervisor's dashboard hears of it: the request to decide, and the chart's last day
    # counts one more escalated complaint ticket.
    row = supervisor.wait_for_selector("#dashboard-approvals tr[data-approval]", timeout=10_000)
    assert "CN¥150.00" in row.inner_text() and "li.acme" in row.inner_text()
    wait_until(supervisor, f"{LAST_POINT}.escalated === 1")
    assert supervisor.evaluate(f"{LAST_POINT}.rate") == 100
    assert (
        "1 of 1 complaint tickets escalated"
        in supervisor.locator('[data-rate-figure="week"]').inner_text()
    )
    # 100% of one complaint ticket: too few tickets to be flagged against the target.
    assert supervisor.locator('[data-rate-figure="week"] [data-part="above"]').is_hidden()
    assert supervisor.evaluate("window.notReloaded") is True

    supervisor.locator("#dashboard-approvals form.decide-approve button").click()
    supervisor.wait_for_url(f"{server}/supervisor/")
    assert "Approved: CN¥150.00 granted." in supervisor.locator(".messages").inner_text()
    assert "Nothing waits for approval." in supervisor.locator("#dashboard-approvals").inner_text()

    # The agent's ticket page shows the decision and the refund it granted, without a reload.
    agent.wait_for_selector(
        "#remedies .approval-requests > li[data-state=approved]", timeout=10_000
    )
    assert "Approved" in asked.locator(".badge").inner_text()
    assert "wang.acme granted CN¥150.00" in asked.inner_text()
    granted = agent.locator("#remedies ul.granted > li")
    assert granted.count() == 1 and "CN¥150.00" in granted.inner_text()
    assert agent.evaluate("window.notReloaded") is True
    assert refused == []


@pytest.fixture
def waiting_request(complaint_ticket, agent_li) -> Ticket:
    """The complaint ticket's ¥150 refund already waits for approval; a second complaint ticket
    about another order is open. Returns the second ticket."""
    from escalation.approvals import request_approval
    from tests.conftest import acting

    tenant = complaint_ticket.tenant
    with tenancy.activate(tenant):
        request_approval(
            acting_agent=acting(agent_li),
            ticket=complaint_ticket,
            kind=RemedyKind.REFUND,
            amount="150",
            currency="CNY",
            note="到货破损",
        )
        customer = CustomerFactory(name="张伟")
        second = open_ticket(
            acting_agent=SYSTEM,
            customer=customer,
            subject="洗碗机漏水",
            channel="email",
            order=OrderFactory(customer=customer, number="SO20261201"),
        )
        Ticket.objects.filter(pk=second.pk).update(reason_code="damaged")
        return second


def test_a_section_being_typed_in_waits_and_keeps_what_was_typed(
    live_asgi_server,  # noqa: F811
    complaint_ticket,
    waiting_request,
    browser_page,  # noqa: F811
    settings,
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = live_asgi_server
    agent = browser_page
    supervisor = agent.context.browser.new_context(locale="en-US").new_page()

    sign_in(supervisor, server, "wang.acme")
    supervisor.goto(f"{server}/supervisor/")
    supervisor.wait_for_selector("#live-status[data-state=connected]", timeout=10_000)
    rows = supervisor.locator("#dashboard-approvals tr[data-approval]")
    assert rows.count() == 1
    counter = supervisor.locator("#dashboard-approvals form.decide-counter")
    counter.locator("input[name=amount]").fill("120")
    counter.locator("input[name=reason]").fill("先退一部分")
    assert supervisor.evaluate("document.activeElement.name") == "reason"

    sign_in(agent, server, "li.acme")
    agent.goto(f"{server}/tickets/{waiting_request.number}/")
    form = agent.locator("#remedies form.grant")
    form.locator("select[name=kind]").select_option("refund")
    form.locator("input[name=amount]").fill("200")
    form.locator("button[type=submit]").click()
    agent.wait_for_url(f"{server}/tickets/{waiting_request.number}/#remedies")

    # The chart moves at once; the queue, where the supervisor is typing, waits.
    wait_until(supervisor, f"{LAST_POINT}.escalated === 2")
    supervisor.wait_for_timeout(1_000)
    assert rows.count() == 1
    assert supervisor.evaluate("document.activeElement.value") == "先退一部分"

    supervisor.locator("h1").click()  # focus leaves the queue: it refreshes now
    wait_until(
        supervisor,
        "document.querySelectorAll('#dashboard-approvals tr[data-approval]').length === 2",
    )
    counter = supervisor.locator("#dashboard-approvals form.decide-counter").first
    assert counter.locator("input[name=amount]").input_value() == "120"
    assert counter.locator("input[name=reason]").input_value() == "先退一部分"
