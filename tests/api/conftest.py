"""A world for the public API: acme and globex each with a customer of the same email, an
order, a ticket with a message, a remedy-free escalation; and clients with API keys."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from escalation.escalations import escalate
from helpdesk import tenancy
from helpdesk.models import ApiKey, WebhookSubscription
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory
from tickets import services


@dataclass
class Merchant:
    customer: int
    order: str
    ticket: int
    escalation: int
    subscription: int


def build(tenant, *, email: str, order: str, subject: str) -> Merchant:
    with tenancy.activate(tenant):
        customer = CustomerFactory(name="李伟", email=email)
        bought = OrderFactory(customer=customer, number=order, currency=tenant.default_currency)
        OrderLineFactory(order=bought, sku="HOOD-1")
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject=subject, channel="email", order=bought
        )
        raised = escalate(ticket=ticket, trigger="manual", reason="angry")
        subscription = WebhookSubscription.objects.create(
            url="https://hooks.example.com/helpdesk", events=["ticket.created"], secret="s3cret"
        )
        return Merchant(
            customer=customer.pk,
            order=bought.number,
            ticket=ticket.number,
            escalation=raised.pk if raised else 0,
            subscription=subscription.pk,
        )


@pytest.fixture
def acme(tenant_acme) -> Merchant:
    return build(tenant_acme, email="li.wei@example.cn", order="A-1001", subject="吸油烟机噪音很大")


@pytest.fixture
def globex(tenant_globex) -> Merchant:
    # Same email as acme's customer; two tickets so globex's #2 exists where acme has none.
    made = build(tenant_globex, email="li.wei@example.cn", order="G-2002", subject="Tent pole")
    with tenancy.activate(tenant_globex):
        second = services.open_ticket(
            acting_agent=SYSTEM,
            customer=CustomerFactory(name="Sam"),
            subject="Lantern",
            channel="chat",
        )
    made.ticket = second.number
    return made


def key_client(tenant, user, scopes=("read", "write")) -> APIClient:
    _, token = ApiKey.issue(tenant=tenant, acting_user=user, name="test", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def admin_api(tenant_acme, admin_zhao) -> APIClient:
    return key_client(tenant_acme, admin_zhao, scopes=("read", "write", "admin"))


@pytest.fixture
def supervisor_api(tenant_acme, supervisor_wang) -> APIClient:
    return key_client(tenant_acme, supervisor_wang)


@pytest.fixture
def agent_api(tenant_acme, agent_li) -> APIClient:
    return key_client(tenant_acme, agent_li)
