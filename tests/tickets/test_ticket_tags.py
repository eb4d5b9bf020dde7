"""Tags on the ticket page: an agent adds several at once (in English or Chinese punctuation),
takes one off, and the history says so; bad input and other merchants' tickets are refused."""

from __future__ import annotations

import pytest

from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def ticket(in_acme) -> Ticket:
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    return services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="洗碗机漏水", channel="email"
    )


def _tags(ticket: Ticket) -> list[str]:
    return sorted(ticket.tags.values_list("name", flat=True))


def test_an_agent_adds_tags_and_takes_one_off_from_the_ticket_page(agent_li, ticket):
    client = login(agent_li)
    url = f"/tickets/{ticket.number}/tags/"
    response = client.post(url, {"tags": "Leak, 漏水、warranty，Leak"}, follow=True, **HTML)
    assert response.status_code == 200
    assert _tags(ticket) == ["leak", "warranty", "漏水"]
    page = response.content.decode()
    assert 'name="remove" value="漏水"' in page

    response = client.post(url, {"remove": "leak"}, follow=True, **HTML)
    assert _tags(ticket) == ["warranty", "漏水"]
    assert "Tag leak removed" in response.content.decode()  # the history, in words
    kinds = list(
        AuditEvent.objects.filter(object_id=str(ticket.pk))
        .filter(action__in=[AuditKind.TICKET_TAGGED, AuditKind.TICKET_UNTAGGED])
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert kinds == [AuditKind.TICKET_TAGGED, AuditKind.TICKET_UNTAGGED]


@pytest.mark.parametrize("typed", ["", " , ，", "x" * 61])
def test_nothing_or_too_long_to_tag_is_a_400_with_the_reason(agent_li, ticket, typed):
    response = login(agent_li).post(f"/tickets/{ticket.number}/tags/", {"tags": typed}, **HTML)
    assert response.status_code == 400
    assert _tags(ticket) == []


def test_another_merchants_ticket_cannot_be_tagged(globex_agent_li, ticket):
    response = login(globex_agent_li).post(f"/tickets/{ticket.number}/tags/", {"tags": "spam"})
    assert response.status_code == 404
    assert _tags(ticket) == []
