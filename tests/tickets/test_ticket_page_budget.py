"""The ticket page reads a long ticket of a customer with a long history in the same number of
statements as a short one, and within a fixed budget: everything it shows (conversation,
attachments, customer card with orders and lines, history, remedies, escalations, tags,
presence) comes from one query each, whatever the number of rows."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from escalation import escalations
from escalation.models import Trigger
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory
from tickets import services
from tickets.models import Attachment, Group, GroupMember, Message, Ticket

pytestmark = pytest.mark.django_db

# Sign-in and merchant (session, user, their merchants and memberships: 3); the ticket and its group's
# reach check (2); messages and their attachments (2); the customer card: identities, orders,
# their lines and, past ten orders, their lifetime value (4); who a reply reaches (1: the account
# the customer last wrote to, or the first that can reply); blocks (1); remedy limits, remedies,
# approval requests (3); presence, names, escalations and the escalation policy (4); the Calls
# panel's call-backs and calls logged, with their agents (2); reason codes, tags, the
# customer's other tickets (3) and the history (1). The panels' own reach checks reuse the
# view's, and the Calls panel's phone number comes from the card's identities.
TICKET_PAGE_BUDGET = 26


def _statements(client, ticket: Ticket) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/tickets/{ticket.number}/")
    assert response.status_code == 200
    return len(queries)


def _ticket(customer, group: Group, subject: str) -> Ticket:
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Ticket.objects.filter(pk=ticket.pk).update(group=group)
    ticket.refresh_from_db()
    return ticket


def _grow(ticket: Ticket, customer, agent, messages: int, first_order: int = 0) -> None:
    for n in range(messages):
        message = Message.objects.create(
            ticket=ticket,
            direction="inbound" if n % 2 == 0 else "outbound",
            channel="email",
            author_customer=customer if n % 2 == 0 else None,
            body_text=f"第 {n} 条消息",
            metadata={"from": "li.wei@example.cn"},
        )
        if n % 3 == 0:
            Attachment.objects.create(
                message=message,
                file=ContentFile(b"jpeg", name=f"photo-{n}.jpg"),
                filename=f"photo-{n}.jpg",
                content_type="image/jpeg",
                size=4,
            )
    for n in range(first_order, first_order + 15):
        order = OrderFactory(customer=customer, number=f"SO2026{n:04d}")
        for _ in range(3):
            OrderLineFactory(order=order)
    services.tag_ticket(acting_agent=SYSTEM, ticket=ticket, names=["漏水", "urgent", "vip"])
    for n in range(5):
        services.add_note(acting_agent=acting(agent), ticket=ticket, text=f"备注 {n}")
    escalations.escalate(ticket=ticket, trigger=Trigger.CUSTOMER_REQUEST, reason="找主管")


def test_the_ticket_page_reads_any_ticket_within_a_fixed_budget(agent_li, in_acme):
    group = Group.objects.create(name="After-sales 售后")
    GroupMember.objects.create(group=group, user=agent_li)
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    short = _ticket(customer, group, "吸油烟机噪音很大")
    long = _ticket(customer, group, "洗碗机漏水")
    client = login(agent_li)
    client.get(f"/tickets/{short.number}/")  # sessions and the like warmed up
    assert _statements(client, short) <= TICKET_PAGE_BUDGET

    _grow(long, customer, agent_li, messages=40)
    long.refresh_from_db()
    assert long.escalated_at is not None
    page = client.get(f"/tickets/{long.number}/").content.decode()
    assert "photo-0.jpg" in page and "photo-39.jpg" in page and "第 39 条消息" in page
    assert "SO20260014" in page and "找主管" in page and "备注 4" in page
    statements = _statements(client, long)
    assert statements <= TICKET_PAGE_BUDGET

    # Twice the conversation, orders, notes and history: not one statement more.
    _grow(long, customer, agent_li, messages=40, first_order=15)
    assert _statements(client, long) == statements
