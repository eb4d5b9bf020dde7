"""Very long messages are collapsed on the ticket page, with "Show all" (no JavaScript needed)."""

from __future__ import annotations

import pytest

from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Message

pytestmark = pytest.mark.django_db


def test_long_messages_collapse_and_short_ones_do_not(agent_li, in_acme):
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="安装问题", channel="email"
    )
    for body in ["短消息。", "长" * 1300 + "结尾在这里", "\n".join(f"第{i}行" for i in range(40))]:
        Message.objects.create(
            ticket=ticket,
            direction="inbound",
            channel="email",
            author_customer=customer,
            body_text=body,
        )

    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()

    assert page.count('<details class="long-message">') == 2
    assert page.count("Show all") == 2
    assert '<div class="body">短消息。</div>' in page
    assert "结尾在这里" in page  # the whole text is on the page, folded
    assert "第39行" in page
