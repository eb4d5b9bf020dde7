"""The ticket page's "Make it right" panel: what the agent may still give, the ladder from the
least costly remedy, the grant form and how each remedy's execution stands."""

from __future__ import annotations

from decimal import Decimal

import pytest

from escalation.models import (
    ApprovalRequest,
    EmpowermentPolicy,
    Remedy,
    RemedyKind,
    RemedyLimit,
)
from helpdesk import tenancy
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.channels_in.test_json_api import LocalServer, Served, local_server  # noqa: F401
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets.models import Order
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db

PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}
LADDER = ["explain", "gift", "reship", "price_protection", "refund", "full_refund", "free_order"]


@pytest.fixture
def li_refund_limit(tenant_acme) -> RemedyLimit:
    """Agents may refund ¥100 per grant and ¥150 a day."""
    with tenancy.activate(tenant_acme):
        return RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=RemedyKind.REFUND,
            currency="CNY",
            per_grant_max_amount=Decimal("100"),
            per_agent_day_max_amount=Decimal("150"),
        )


def ticket_url(ticket) -> str:
    return f"/tickets/{ticket.number}/"


def grant(client, ticket, **fields: str):
    """Post the panel's grant form from the ticket page, as a browser does, and follow."""
    return client.post(
        f"/tickets/{ticket.number}/remedies/",
        fields,
        HTTP_REFERER=f"http://testserver{ticket_url(ticket)}",
        follow=True,
        **PAGE,
    )


def step(page: str, key: str) -> str:
    """The text of one rung of the ladder."""
    start = page.index(f'data-step="{key}"')
    return page[start : page.index("</li>", start)]


def remedies_of(tenant) -> list[Remedy]:
    with tenancy.activate(tenant):
        return list(Remedy.objects.all())


def test_the_page_shows_what_the_agent_may_still_give_and_it_shrinks_after_a_grant(
    agent_li, acme_ticket, li_refund_limit
):
    client = login(agent_li)
    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert "Make it right" in page
    assert "You can refund up to CN¥100.00 now" in step(page, "refund")

    response = grant(client, acme_ticket, kind="refund", amount="100", note="漏油，退一部分")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Refund of CN¥100.00 granted." in page
    # The day's cap (¥150) now binds: ¥50 is left today.
    assert "You can refund up to CN¥50.00 now" in step(page, "refund")
    granted = page[page.index('class="granted"') :]
    assert "CN¥100.00" in granted
    assert "granted by li.acme" in granted
    assert "漏油，退一部分" in granted


def test_a_grant_past_the_limit_goes_to_a_supervisor_and_writes_no_remedy(
    agent_li, tenant_acme, acme_ticket, li_refund_limit
):
    response = grant(login(agent_li), acme_ticket, kind="refund", amount="100.01")
    page = response.content.decode()
    assert response.redirect_chain == [(f"{ticket_url(acme_ticket)}#remedies", 302)]
    assert "Above your limit: sent to a supervisor for approval." in page
    asked = page[page.index('class="approval-requests"') :]
    assert "CN¥100.01 is more than the most you may give in one grant allows" in asked
    assert "at most CN¥100.00, CN¥0.01 over" in asked
    assert remedies_of(tenant_acme) == []
    with tenancy.activate(tenant_acme):
        assert Order.objects.get().refunded_amount == 0
        (approval,) = ApprovalRequest.objects.all()
    assert (approval.kind, approval.amount, approval.state) == (
        "refund",
        Decimal("100.01"),
        "pending",
    )
    assert "You can refund up to CN¥100.00 now" in step(page, "refund")


def test_an_agent_without_a_limit_sees_that_a_supervisor_must_approve(
    agent_li, tenant_acme, acme_ticket
):
    page = login(agent_li).get(ticket_url(acme_ticket)).content.decode()
    for kind in ("gift", "refund", "full_refund", "free_order"):
        assert "needs a supervisor&#x27;s approval" in step(page, kind), kind
    assert "Refund all" not in page

    page = grant(login(agent_li), acme_ticket, kind="gift", amount="10", item="优惠券").content
    assert "Above your limit: sent to a supervisor for approval." in page.decode()
    assert "no limit is set for your role in this currency" in page.decode()
    assert remedies_of(tenant_acme) == []
    with tenancy.activate(tenant_acme):
        assert list(ApprovalRequest.objects.values_list("kind", "amount")) == [
            ("gift", Decimal("10"))
        ]


def test_the_ladder_goes_from_explaining_to_a_free_order(
    agent_li, tenant_acme, acme_ticket, agents_refund_limit
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.AGENT, kind=RemedyKind.GIFT, currency="CNY", per_grant_max_amount=None
        )
    page = login(agent_li).get(ticket_url(acme_ticket)).content.decode()
    order = [page.index(f'data-step="{key}"') for key in LADDER]
    assert order == sorted(order)
    assert "Costs nothing" in step(page, "explain")
    assert "You can give a gift of any value" in step(page, "gift")
    # ¥100 per grant does not cover the ¥299.00 left on the order.
    assert "CN¥299.00: needs a supervisor" in step(page, "full_refund")


def test_a_full_refund_within_the_allowance_is_one_click(agent_li, tenant_acme, acme_ticket):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.AGENT, kind=RemedyKind.REFUND, currency="CNY", per_grant_max_amount=500
        )
    client = login(agent_li)
    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert "You can refund all CN¥299.00 now" in step(page, "full_refund")
    assert 'name="amount" value="299.00"' in step(page, "full_refund")

    page = grant(client, acme_ticket, kind="refund", amount="299.00").content.decode()
    assert "Everything paid on this order has been refunded" in step(page, "full_refund")
    with tenancy.activate(tenant_acme):
        assert Order.objects.get().refunded_amount == Decimal("299.00")


def test_without_an_order_system_a_remedy_waits_to_be_marked_executed_by_hand(
    agent_li, tenant_acme, acme_ticket, agents_refund_limit
):
    client = login(agent_li)
    page = grant(client, acme_ticket, kind="refund", amount="30").content.decode()
    assert "No order system is connected" in page
    granted = page[page.index('class="granted"') :]
    assert "To be executed by hand" in granted
    assert "Mark executed" in granted
    assert "Retry" not in granted

    (remedy,) = remedies_of(tenant_acme)
    response = client.post(
        f"/tickets/{acme_ticket.number}/remedies/{remedy.pk}/executed/",
        {"note": "支付宝手工退款"},
        HTTP_REFERER=f"http://testserver{ticket_url(acme_ticket)}",
        follow=True,
        **PAGE,
    )
    granted = response.content.decode()[response.content.decode().index('class="granted"') :]
    assert "Executed" in granted
    assert "Mark executed" not in granted


def test_a_failed_execution_shows_its_error_and_can_be_retried(
    agent_li,
    tenant_acme,
    acme_ticket,
    agents_refund_limit,
    local_server,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    with tenancy.activate(tenant_acme):
        EmpowermentPolicy.objects.create(execution_url=local_server.url("/remedies"))
    local_server.queue.append(Served(500, b"order system down"))
    client = login(agent_li)
    # The order system hears of a grant once it is committed (Celery runs inline here).
    with django_capture_on_commit_callbacks(execute=True):
        grant(client, acme_ticket, kind="refund", amount="30")
    page = client.get(ticket_url(acme_ticket)).content.decode()
    granted = page[page.index('class="granted"') :]
    assert "Execution failed" in granted
    assert "500" in granted
    assert "Retry" in granted and "Mark executed" in granted

    (remedy,) = remedies_of(tenant_acme)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/tickets/{acme_ticket.number}/remedies/{remedy.pk}/retry/",
            HTTP_REFERER=f"http://testserver{ticket_url(acme_ticket)}",
            **PAGE,
        )
    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert 'data-execution="executed"' in page
    assert "Retry" not in page[page.index('class="granted"') :]
    assert len(local_server.seen) == 2
    keys = {seen.headers["Idempotency-Key"] for seen in local_server.seen}
    assert keys == {str(remedy.idempotency_key)}


def test_another_merchants_ticket_is_404(agent_li, tenant_acme, acme_ticket, tenant_globex):
    with tenancy.activate(tenant_globex):
        for subject in ("Tent pole", "Lantern"):
            open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="chat"
            )
    client = login(agent_li)
    response = client.post("/tickets/2/remedies/", {"kind": "gift", "amount": "1"}, **PAGE)
    assert response.status_code == 404
    assert remedies_of(tenant_globex) == []


def test_without_an_order_only_a_gift_in_the_merchants_currency_can_be_given(
    agent_li, tenant_acme, acme_buyer
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.AGENT, kind=RemedyKind.GIFT, currency="CNY", per_grant_max_amount=50
        )
        ticket = open_ticket(
            acting_agent=SYSTEM, customer=acme_buyer, subject="咨询", channel="email"
        )
    client = login(agent_li)
    page = client.get(ticket_url(ticket)).content.decode()
    assert "You can give a gift worth up to CN¥50.00 now" in step(page, "gift")
    assert "Only for a ticket with an order" in step(page, "refund")
    form = page[page.index('class="grant"') :]
    assert 'value="gift"' in form and 'value="refund"' not in form

    page = grant(client, ticket, kind="gift", amount="20", item="50元优惠券").content.decode()
    assert "Gift or goodwill credit of CN¥20.00 granted." in page
    (remedy,) = remedies_of(tenant_acme)
    assert (remedy.currency, remedy.item, remedy.order) == ("CNY", "50元优惠券", None)
