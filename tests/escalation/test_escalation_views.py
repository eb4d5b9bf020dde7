"""Escalating by hand and settling on the ticket page: an agent brings a ticket to a
supervisor, saying why; a supervisor resolves it, saying how; another merchant sees nothing."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from escalation import escalations
from escalation.models import Escalation, Trigger
from helpdesk import tenancy
from helpdesk.models import Role
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db

PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


def ticket_url(ticket: Ticket) -> str:
    return f"/tickets/{ticket.number}/"


def escalate(client, ticket: Ticket, reason: str):
    return client.post(
        f"/tickets/{ticket.number}/escalate/",
        {"reason": reason},
        HTTP_REFERER=f"http://testserver{ticket_url(ticket)}",
        **PAGE,
    )


def resolve(client, escalation: Escalation, resolution: str, **extra: str):
    return client.post(
        f"/tickets/escalations/{escalation.pk}/resolve/",
        {"resolution": resolution, **extra},
        HTTP_REFERER=f"http://testserver/tickets/{escalation.ticket.number}/",
        **PAGE,
    )


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def escalations_in(tenant) -> list[Escalation]:
    with tenancy.activate(tenant):
        return list(Escalation.objects.select_related("ticket").order_by("pk"))


@pytest.fixture
def globex_supervisor(tenant_globex):
    return MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="boss.globex"), role=Role.SUPERVISOR
    ).user


def test_an_agent_escalates_a_ticket_from_its_page(agent_li, tenant_acme, acme_ticket):
    client = login(agent_li)
    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert 'data-live-section="ticket-escalations"' in page
    assert "Escalate to a supervisor" in page
    assert "Not escalated." in page

    response = escalate(client, acme_ticket, "客户说要投诉到消协")
    assert response.status_code == 302
    assert response["Location"] == f"{ticket_url(acme_ticket)}#escalations"
    assert said(response) == ["The ticket was escalated to a supervisor."]
    [escalation] = escalations_in(tenant_acme)
    assert escalation.trigger == Trigger.MANUAL and escalation.raised_by == agent_li

    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert "客户说要投诉到消协" in page
    assert "escalated by li.acme" in page
    assert "Escalated by an agent" in page
    # An agent does not settle escalations, and one open hand escalation is enough.
    assert "How was it settled?" not in page
    assert "Escalate to a supervisor" not in page


def test_escalating_without_a_reason_is_refused_with_a_message(agent_li, tenant_acme, acme_ticket):
    response = escalate(login(agent_li), acme_ticket, "   ")
    assert response.status_code == 302
    assert said(response) == ["Say why the ticket needs a supervisor"]
    assert escalations_in(tenant_acme) == []


def test_escalating_twice_by_hand_says_it_already_waits(
    agent_li, supervisor_wang, tenant_acme, acme_ticket
):
    escalate(login(agent_li), acme_ticket, "客户很生气")
    response = escalate(login(supervisor_wang), acme_ticket, "我也觉得")
    assert response.status_code == 302
    assert said(response) == ["This ticket already waits for a supervisor (escalated by li.acme)"]
    assert len(escalations_in(tenant_acme)) == 1


def test_the_escalate_form_is_gone_when_the_merchant_switched_it_off(
    agent_li, tenant_acme, acme_ticket
):
    with tenancy.activate(tenant_acme):
        rules = escalations.policy()
        rules.on_manual = False
        rules.save()
    client = login(agent_li)
    assert "Escalate to a supervisor" not in client.get(ticket_url(acme_ticket)).content.decode()
    response = client.post(f"/tickets/{acme_ticket.number}/escalate/", {"reason": "客户很生气"})
    assert response.status_code == 403
    assert escalations_in(tenant_acme) == []


def test_an_agent_cannot_resolve_an_escalation(agent_li, tenant_acme, acme_ticket):
    with tenancy.activate(tenant_acme):
        escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    response = login(agent_li).post(
        f"/tickets/escalations/{escalation.pk}/resolve/", {"resolution": "我处理好了"}
    )
    assert response.status_code == 403
    [still] = escalations_in(tenant_acme)
    assert still.is_open


def test_a_supervisor_resolves_an_escalation_from_the_ticket_page(
    supervisor_wang, tenant_acme, acme_ticket
):
    with tenancy.activate(tenant_acme):
        escalation = escalations.escalate(
            ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST, reason="The customer wrote 经理"
        )
    client = login(supervisor_wang)
    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert "Customer asked for a supervisor" in page
    assert "escalated by the helpdesk" in page
    assert "How was it settled?" in page

    response = resolve(client, escalation, "")
    assert response.status_code == 302
    assert said(response) == ["Say how the escalation was settled"]
    assert escalations_in(tenant_acme)[0].is_open
    assert (
        "Say how the escalation was settled" in client.get(ticket_url(acme_ticket)).content.decode()
    )

    response = resolve(client, escalation, "已致电客户，补发配件")
    assert response["Location"] == f"{ticket_url(acme_ticket)}#escalations"
    assert said(response) == ["The escalation was resolved."]
    [resolved] = escalations_in(tenant_acme)
    assert resolved.state == Escalation.State.RESOLVED
    assert resolved.resolved_by == supervisor_wang
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action=AuditKind.ESCALATION_RESOLVED).count() == 1

    page = client.get(ticket_url(acme_ticket)).content.decode()
    assert "Resolved by wang.acme" in page and "已致电客户，补发配件" in page
    assert "How was it settled?" not in page

    response = resolve(client, escalation, "再来一次")
    assert said(response) == ["This escalation was already resolved by wang.acme"]


def test_resolving_goes_back_where_the_form_asked_on_this_site_only(
    supervisor_wang, tenant_acme, acme_ticket
):
    with tenancy.activate(tenant_acme):
        first = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
        second = escalations.escalate(ticket=acme_ticket, trigger=Trigger.REPEAT_CONTACT)
    client = login(supervisor_wang)
    response = resolve(client, first, "已处理", next="/supervisor/")
    assert response["Location"] == "/supervisor/"
    response = resolve(client, second, "已处理", next="https://evil.example/")
    assert response["Location"] == f"{ticket_url(acme_ticket)}#escalations"


def test_another_merchant_cannot_see_escalate_or_resolve(
    globex_supervisor, globex_agent_li, tenant_acme, acme_ticket
):
    with tenancy.activate(tenant_acme):
        escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    boss = login(globex_supervisor)
    assert boss.get(ticket_url(acme_ticket), **PAGE).status_code == 404
    response = boss.post(
        f"/tickets/escalations/{escalation.pk}/resolve/", {"resolution": "不是我们的"}, **PAGE
    )
    assert response.status_code == 404
    response = login(globex_agent_li).post(
        f"/tickets/{acme_ticket.number}/escalate/", {"reason": "不是我们的"}, **PAGE
    )
    assert response.status_code == 404
    [untouched] = escalations_in(tenant_acme)
    assert untouched.is_open and untouched.trigger == Trigger.CUSTOMER_REQUEST
