"""Collision detection: a reply written before a colleague answered is held back until the agent
has read the colleague's answer; they may then send it anyway."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from helpdesk import tenancy
from helpdesk.models import Membership
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Message, Ticket

# Sending happens after commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fridge_ticket(acme_mailbox) -> Ticket:
    """An email ticket with the customer's question; replies go out by mail (locmem here)."""
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="冰箱不制冷", channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=ticket.subject,
        body_text="冰箱买了三天就不制冷了。",
    )
    return ticket


@pytest.fixture
def wang_named(supervisor_wang):
    Membership.objects.filter(user=supervisor_wang).update(display_name="王主管")
    return supervisor_wang


def seen_on(client: Client, ticket: Ticket) -> str:
    """The ``seen`` id the ticket page's reply form carries right now."""
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    found = re.search(r'name="seen" value="(\d+)"', page)
    assert found, "the reply form carries no seen id"
    return found.group(1)


def outbound_texts(tenant) -> list[str]:
    with tenancy.activate(tenant):
        return list(
            Message.objects.filter(direction="outbound")
            .order_by("pk")
            .values_list("body_text", flat=True)
        )


def test_a_stale_reply_is_held_back_with_the_colleagues_answer_and_the_typed_text(
    agent_li, wang_named, tenant_acme, fridge_ticket
):
    li = login(agent_li)
    seen = seen_on(li, fridge_ticket)
    with tenancy.activate(tenant_acme):
        services.reply_to_customer(
            acting_agent=acting(wang_named), ticket=fridge_ticket, text="师傅明天上午上门检修。"
        )
    assert len(mail.outbox) == 1

    response = li.post(
        f"/tickets/{fridge_ticket.number}/reply/",
        {"text": "请您先检查电源插头。", "status": "solved", "seen": seen},
    )

    assert response.status_code == 409
    page = response.content.decode()
    assert "a colleague answered after you opened this ticket" in page
    assert "王主管 replied" in page and "师傅明天上午上门检修。" in page
    assert '<textarea name="text" rows="5" required data-draft="reply">请您先检查电源插头。' in page
    assert '<option value="solved" selected>' in page
    assert "Send anyway" in page
    assert outbound_texts(tenant_acme) == ["师傅明天上午上门检修。"]
    assert len(mail.outbox) == 1  # nothing more went to the customer


def test_send_anyway_sends_the_reply_once_the_colleagues_answer_was_shown(
    agent_li, wang_named, tenant_acme, fridge_ticket
):
    li = login(agent_li)
    seen = seen_on(li, fridge_ticket)
    with tenancy.activate(tenant_acme):
        services.reply_to_customer(
            acting_agent=acting(wang_named), ticket=fridge_ticket, text="师傅明天上午上门检修。"
        )
    held = li.post(
        f"/tickets/{fridge_ticket.number}/reply/", {"text": "请您先检查电源插头。", "seen": seen}
    )
    newer_seen = re.search(r'name="seen" value="(\d+)"', held.content.decode()).group(1)
    assert int(newer_seen) > int(seen)

    response = li.post(
        f"/tickets/{fridge_ticket.number}/reply/",
        {"text": "请您先检查电源插头。", "seen": newer_seen},
    )

    assert response.status_code == 302
    assert response["Location"] == f"/tickets/{fridge_ticket.number}/?sent=reply"
    assert outbound_texts(tenant_acme) == ["师傅明天上午上门检修。", "请您先检查电源插头。"]
    assert len(mail.outbox) == 2
    assert "请您先检查电源插头。" in mail.outbox[1].body


def test_a_colleagues_internal_note_also_holds_a_reply_back(
    agent_li, wang_named, tenant_acme, fridge_ticket
):
    li = login(agent_li)
    seen = seen_on(li, fridge_ticket)
    with tenancy.activate(tenant_acme):
        services.add_note(
            acting_agent=acting(wang_named), ticket=fridge_ticket, text="别回复，我在打电话。"
        )
    response = li.post(
        f"/tickets/{fridge_ticket.number}/reply/", {"text": "请您先检查电源插头。", "seen": seen}
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "王主管 added a note" in page and "别回复，我在打电话。" in page
    assert outbound_texts(tenant_acme) == [] and mail.outbox == []


def test_the_agents_own_earlier_reply_does_not_hold_back_the_next(
    agent_li, tenant_acme, fridge_ticket
):
    li = login(agent_li)
    seen = seen_on(li, fridge_ticket)
    first = li.post(f"/tickets/{fridge_ticket.number}/reply/", {"text": "收到。", "seen": seen})
    assert first.status_code == 302
    # The same page, still open in another tab, sends a second reply.
    second = li.post(
        f"/tickets/{fridge_ticket.number}/reply/", {"text": "我们尽快处理。", "seen": seen}
    )
    assert second.status_code == 302
    assert outbound_texts(tenant_acme) == ["收到。", "我们尽快处理。"]
    assert len(mail.outbox) == 2


def test_a_new_customer_message_is_shown_but_does_not_hold_a_reply_back(
    agent_li, tenant_acme, fridge_ticket
):
    li = login(agent_li)
    seen = seen_on(li, fridge_ticket)
    with tenancy.activate(tenant_acme):
        Message.objects.create(
            ticket=fridge_ticket,
            direction="inbound",
            channel="email",
            author_customer=fridge_ticket.customer,
            body_text="现在连灯也不亮了。",
        )
    response = li.post(
        f"/tickets/{fridge_ticket.number}/reply/",
        {"text": "请您先检查电源插头。", "seen": seen},
        follow=True,
    )
    page = response.content.decode()
    assert "Reply sent." in page
    assert "The customer wrote again while you were typing" in page
    assert outbound_texts(tenant_acme) == ["请您先检查电源插头。"]


def test_a_damaged_seen_id_is_a_clear_400_and_nothing_is_sent(agent_li, tenant_acme, fridge_ticket):
    response = login(agent_li).post(
        f"/tickets/{fridge_ticket.number}/reply/", {"text": "收到。", "seen": "12abc"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_input"
    assert outbound_texts(tenant_acme) == []


def test_another_merchants_agent_gets_404_and_nothing_is_sent(
    globex_agent_li, tenant_acme, tenant_globex, fridge_ticket
):
    response = login(globex_agent_li).post(
        f"/tickets/{fridge_ticket.number}/reply/", {"text": "hello", "seen": "0"}
    )
    assert response.status_code == 404
    assert outbound_texts(tenant_acme) == [] and mail.outbox == []
