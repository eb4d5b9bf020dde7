"""Shared fixtures of the escalation tests: a buyer of acme's with an order and a ticket about
it, and the agents' refund limit. Helpers append their own fixtures below."""

from __future__ import annotations

from decimal import Decimal

import pytest

from escalation.models import RemedyKind, RemedyLimit
from helpdesk import tenancy
from helpdesk.models import Role, Tenant
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory, OrderFactory
from tickets.models import Customer, Order, Ticket
from tickets.services import open_ticket


@pytest.fixture
def acme_buyer(tenant_acme: Tenant) -> Customer:
    with tenancy.activate(tenant_acme):
        return CustomerFactory(name="王芳", email="wang.fang@example.cn")


@pytest.fixture
def acme_order(tenant_acme: Tenant, acme_buyer: Customer) -> Order:
    """¥299.00 paid, nothing refunded yet."""
    with tenancy.activate(tenant_acme):
        return OrderFactory(customer=acme_buyer, number="SO20260815")


@pytest.fixture
def acme_ticket(tenant_acme: Tenant, acme_order: Order) -> Ticket:
    with tenancy.activate(tenant_acme):
        return open_ticket(
            acting_agent=SYSTEM,
            customer=acme_order.customer,
            subject="油烟机漏油",
            channel="email",
            order=acme_order,
        )


@pytest.fixture
def agents_refund_limit(tenant_acme: Tenant) -> RemedyLimit:
    """Agents may refund up to ¥100 per grant, with no other cap."""
    with tenancy.activate(tenant_acme):
        return RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=RemedyKind.REFUND,
            currency="CNY",
            per_grant_max_amount=Decimal("100"),
        )
