"""A ticket's history tells every event in words, in the agent's language, with people by name,
newest first and in a bounded number of queries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from helpdesk import tenancy
from helpdesk.models import Membership, Role
from helpdesk.permissions import SYSTEM
from tests.conftest import _member, acting, login
from tests.factories import CustomerFactory
from tickets import audit, history, services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Group, Message, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_language_afterwards():
    """A Chinese page leaves its language active in this thread: the next test starts in the
    site's default, as a new request would."""
    yield
    translation.deactivate()


def _named(user: object, name: str) -> object:
    Membership.objects.filter(tenant=tenancy.require_tenant(), user=user).update(display_name=name)
    return user


def _ticket(subject: str = "吸油烟机噪音很大") -> Ticket:
    customer = CustomerFactory(name="李伟", email=f"c{Ticket.objects.count()}@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        body_text="你好",
    )
    return ticket


def _failed_reply(ticket: Ticket, author: object, error: str) -> Message:
    return Message.objects.create(
        ticket=ticket,
        direction="outbound",
        channel="email",
        author_user=author,
        body_text="您好",
        delivery_state=Message.Delivery.FAILED,
        delivery_error=error,
        delivery_changed_at=timezone.now(),
    )


def _lines(ticket: Ticket, **kwargs: object) -> list[str]:
    return [
        f"{entry.words} | {entry.actor}"
        for entry in history.ticket_history(ticket=ticket, **kwargs).entries
    ]


@pytest.fixture
def people(in_acme, agent_li, supervisor_wang):
    mei = _member(in_acme, "mei.acme", Role.AGENT).user
    _named(agent_li, "李丽")
    _named(mei, "梅梅")
    _named(supervisor_wang, "王主管")
    return type("People", (), {"li": agent_li, "mei": mei, "wang": supervisor_wang})


def test_every_event_is_told_in_words_newest_first_with_names(people):
    ticket = _ticket()
    wang, li, mei = acting(people.wang), acting(people.li), acting(people.mei)
    services.assign_ticket(acting_agent=wang, ticket=ticket, assignee=people.li)
    services.assign_ticket(acting_agent=wang, ticket=ticket, assignee=None)
    services.assign_ticket(acting_agent=mei, ticket=ticket, assignee=people.mei)
    services.change_ticket_priority(acting_agent=wang, ticket=ticket, priority="high")
    services.add_note(acting_agent=li, ticket=ticket, text="客户很着急")
    _failed_reply(ticket, people.mei, "550 5.1.1 <c0@example.cn>: mailbox unavailable")
    group = Group.objects.create(name="售后")
    services.move_to_group(acting_agent=wang, ticket=ticket, group=group)
    services.change_ticket_status(acting_agent=wang, ticket=ticket, status="solved")

    with translation.override("en"):
        lines = _lines(ticket)
    assert lines == [
        "Status changed from New to Solved | 王主管",
        "Moved to group 售后; unassigned from 梅梅 | 王主管",
        "Delivery failed | System",
        "Replied on Email | 梅梅",
        "Internal note added | 李丽",
        "Priority changed from Normal to High | 王主管",
        "Took the ticket | 梅梅",
        "Unassigned (was 李丽) | 王主管",
        "Assigned to 李丽 | 王主管",
        "Customer wrote on Email | 李伟",
        "Ticket opened on Email | System",
    ]
    failure = history.ticket_history(ticket=ticket).entries[2]
    assert "mailbox unavailable" in failure.detail
    assert failure.detail.startswith("The mail server or channel refused it:")


def test_resends_escalations_and_remedies_are_in_the_history(people):
    from escalation.escalations import escalate_by_hand

    ticket = _ticket()
    reply = _failed_reply(ticket, people.li, "timed out")
    audit.record(actor=acting(people.li), kind=AuditKind.MESSAGE_RESENT, obj=reply)
    audit.record(
        actor=acting(people.li),
        kind=AuditKind.REMEDY_GRANTED,
        obj=ticket,
        details={"remedy": 1, "kind": "refund", "amount": "30.00", "currency": "CNY"},
    )
    escalate_by_hand(acting_agent=acting(people.wang), ticket=ticket, reason="客户要求主管")
    with translation.override("en"):
        lines = _lines(ticket)
    assert "Reply sent again | 李丽" in lines
    assert "Remedy granted: Refund, CN¥30.00 | 李丽" in lines
    assert "Escalated: Escalated by an agent | 王主管" in lines


def test_a_kind_it_does_not_know_still_reads_sensibly(people):
    ticket = _ticket()
    AuditEvent.objects.create(
        actor=None,
        actor_label="system",
        action="ticket.teleported",
        object_type="ticket",
        object_id=str(ticket.pk),
        changes={"details": {"into": 42}},
    )
    with translation.override("en"):
        entry = history.ticket_history(ticket=ticket).entries[0]
    assert (entry.words, entry.actor) == ("ticket.teleported", "System")
    assert "42" in entry.detail


def test_the_history_reads_in_chinese_for_a_chinese_agent(people):
    ticket = _ticket()
    services.assign_ticket(acting_agent=acting(people.wang), ticket=ticket, assignee=people.li)
    _failed_reply(ticket, people.li, "550 mailbox unavailable")
    page = login(people.li, language="zh-hans").get(f"/tickets/{ticket.number}/")
    text = page.content.decode()
    history_part = text[text.index('id="history"') :]
    assert "分配给 李丽" in history_part
    assert "发送失败" in history_part
    assert "邮件服务器或渠道拒绝了它：550 mailbox unavailable" in history_part
    assert "系统" in history_part
    assert "System" not in history_part


def test_the_page_shows_the_latest_fifty_and_all_on_request(people):
    ticket = _ticket()
    for n in range(60):
        services.add_note(acting_agent=acting(people.li), ticket=ticket, text=f"note {n}")
    client = login(people.li)
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    section = page[page.index('id="history"') :]
    assert section.count('data-kind="note"') == 50
    assert "?history=all#history" in section
    page = client.get(f"/tickets/{ticket.number}/?history=all").content.decode()
    section = page[page.index('id="history"') :]
    assert section.count('data-kind="note"') == 60
    assert 'data-kind="message.inbound"' in section
    assert "?history=all#history" not in section


def test_times_are_in_the_merchants_time_zone_with_the_exact_time_in_a_title(people):
    ticket = _ticket()
    at = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    Message.objects.filter(ticket=ticket).update(created_at=at)
    page = login(people.li).get(f"/tickets/{ticket.number}/?history=all").content.decode()
    assert 'title="2026-01-05 09:30 CST"' in page


def test_the_history_costs_the_same_queries_however_long_the_ticket(
    people, django_assert_max_num_queries
):
    ticket = _ticket()
    names = {people.li.pk: "李丽"}
    with django_assert_max_num_queries(3):
        history.ticket_history(ticket=ticket, names=names)

    client = login(people.li)
    with CaptureQueriesContext(connection) as short:
        client.get(f"/tickets/{ticket.number}/")
    for n in range(30):
        services.add_note(acting_agent=acting(people.li), ticket=ticket, text=f"note {n}")
        services.change_ticket_priority(
            acting_agent=acting(people.wang), ticket=ticket, priority="high" if n % 2 else "low"
        )
        _failed_reply(ticket, people.mei, "refused")
    with CaptureQueriesContext(connection) as long:
        client.get(f"/tickets/{ticket.number}/?history=all")
    assert len(long) <= len(short)  # a long conversation costs no query per event


def test_another_merchants_ticket_history_is_not_shown(people, tenant_globex, globex_agent_li):
    ticket = _ticket()
    response = login(globex_agent_li).get(f"/tickets/{ticket.number}/")
    assert response.status_code == 404


def test_sqlite_reads_the_same_history_without_a_union(people, monkeypatch):
    """SQLite (make run) refuses LIMIT inside a UNION: the history reads its parts one by one
    there and tells the same events in the same order."""
    ticket = _ticket()
    li = acting(people.li)
    for n in range(3):
        services.add_note(acting_agent=li, ticket=ticket, text=f"备注 {n}")
    services.change_ticket_status(acting_agent=li, ticket=ticket, status="pending")
    with_union = history.ticket_history(ticket=ticket)
    monkeypatch.setattr(connection.features, "supports_slicing_ordering_in_compound", False)
    with CaptureQueriesContext(connection) as queries:
        without = history.ticket_history(ticket=ticket)
    assert not any("UNION" in query["sql"] for query in queries.captured_queries)
    assert without.entries == with_union.entries
    kinds = [entry.kind for entry in without.entries]
    assert kinds.count("note") == 3 and AuditKind.TICKET_STATUS_CHANGED.value in kinds
