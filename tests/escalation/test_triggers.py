"""Escalation triggers, each switchable per merchant: the customer asking for a supervisor,
repeated contact about one order, missed service-level targets, a remedy past an agent's limit;
and what every escalation does to its ticket (escalated once, one open escalation per trigger).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from channels_in.models import ApiChannel, ChannelAccount
from escalation import approvals, escalations
from escalation.models import ApprovalRequest, Escalation, RemedyKind, Trigger
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.conftest import acting
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import service_levels, services
from tickets.audit import AuditKind
from tickets.incoming import Identity, InboundMessage
from tickets.models import AuditEvent, Message, Ticket

pytestmark = pytest.mark.django_db


def switch(**switches: object) -> None:
    """Change the active merchant's escalation policy."""
    rules = escalations.policy()
    for name, value in switches.items():
        setattr(rules, name, value)
    rules.save()


@pytest.fixture
def acme_api(in_acme) -> ChannelAccount:
    account = ChannelAccount.objects.create(kind="api", name="Acme 商城 App")
    ApiChannel.objects.create(account=account, callback_url="https://shop.example/helpdesk")
    return account


@pytest.fixture
def customer_writes(
    acme_api, acme_order, django_capture_on_commit_callbacks
) -> Callable[..., Message]:
    """王芳 writes through the merchant's app about her order; the message is filed and what
    runs after commit (the inbound triggers among it) runs."""
    numbers = itertools.count(1)

    def write(text: str, *, conversation: str = "conv-1", subject: str = "订单咨询") -> Message:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            filed = services.record_customer_message(
                inbound=InboundMessage(
                    channel="api",
                    external_id=f"m-{next(numbers)}",
                    sender_kind="external",
                    sender_value="cust-42",
                    sender_name="王芳",
                    other_identities=[Identity("email", "wang.fang@example.cn")],
                    conversation_id=conversation,
                    subject=subject,
                    text=text,
                    order_number=acme_order.number,
                ),
                account_id=acme_api.pk,
            )
        return filed.message

    return write


@pytest.fixture
def agent_answers(agent_li) -> Callable[[Ticket], Message]:
    def answer(ticket: Ticket) -> Message:
        return services.reply_to_customer(
            acting_agent=acting(agent_li), ticket=ticket, text="我们正在处理，请稍候。"
        )

    return answer


def escalations_of(ticket: Ticket, trigger: str | None = None) -> list[Escalation]:
    found = Escalation.objects.filter(ticket=ticket).order_by("pk")
    return list(found.filter(trigger=trigger) if trigger else found)


# --- the customer asks for a supervisor --------------------------------------------------------


def test_a_customer_asking_for_a_manager_in_chinese_escalates_the_ticket(customer_writes):
    message = customer_writes("你们处理太慢了，我要找你们经理！")
    ticket = message.ticket
    [escalation] = escalations_of(ticket)
    assert escalation.trigger == Trigger.CUSTOMER_REQUEST
    assert escalation.is_open and escalation.raised_by is None
    assert "经理" in escalation.reason
    ticket.refresh_from_db()
    assert ticket.escalated_at == escalation.created_at
    [event] = AuditEvent.objects.filter(action=AuditKind.ESCALATION_RAISED)
    assert event.object_id == str(ticket.pk) and event.actor_label == "system"


def test_a_customer_asking_for_a_manager_in_english_escalates_the_ticket(customer_writes):
    message = customer_writes("This is the third time. Let me speak to a MANAGER, please.")
    [escalation] = escalations_of(message.ticket, Trigger.CUSTOMER_REQUEST)
    assert "manager" in escalation.reason


def test_management_and_managerial_are_not_a_request_for_a_manager(customer_writes):
    # "managerial" holds "manager": only a whole word counts.
    message = customer_writes("Your order management lost my parcel; managerial excuses again.")
    assert escalations_of(message.ticket) == []
    message.ticket.refresh_from_db()
    assert message.ticket.escalated_at is None


def test_a_customer_request_does_not_escalate_when_the_merchant_switched_it_off(
    customer_writes, in_acme
):
    switch(on_customer_request=False)
    message = customer_writes("我要投诉，叫你们主管来")
    assert escalations_of(message.ticket) == []


def test_the_merchant_chooses_the_phrases(customer_writes, in_acme):
    switch(supervisor_phrases=["老板"])
    quiet = customer_writes("我要找你们经理")
    assert escalations_of(quiet.ticket) == []
    loud = customer_writes("叫你们老板出来")
    [escalation] = escalations_of(loud.ticket)
    assert "老板" in escalation.reason


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I want a supervisor now", "supervisor"),
        ("SUPERVISOR!!!", "supervisor"),
        ("let me talk to someone   in charge", "someone in charge"),
        ("找manager处理", "manager"),
        ("请让负责人联系我", "负责人"),
        ("our management team", None),
        ("the managers' meeting", None),
        ("supervisory board", None),
        ("", None),
    ],
)
def test_a_phrase_counts_as_a_whole_word_in_english_and_anywhere_in_chinese(text, found):
    phrases = ["supervisor", "manager", "someone in charge", "负责人"]
    assert escalations.asks_for_supervisor(text, phrases) == found


# --- repeated contact ----------------------------------------------------------------------------


def test_the_third_contact_about_an_order_escalates_and_the_second_does_not(
    customer_writes, agent_answers
):
    first = customer_writes("油烟机漏油")
    ticket = first.ticket
    agent_answers(ticket)
    customer_writes("还是漏油")
    assert escalations_of(ticket) == []  # 2 contacts: N-1
    agent_answers(ticket)
    customer_writes("第三次联系你们了")
    [escalation] = escalations_of(ticket)
    assert escalation.trigger == Trigger.REPEAT_CONTACT
    assert "3" in escalation.reason and "SO20260815" in escalation.reason
    assert "7" in escalation.reason


def test_messages_in_a_row_without_an_answer_are_one_contact(customer_writes):
    message = customer_writes("你好")
    customer_writes("在吗？")
    customer_writes("有人吗？")
    customer_writes("快回复")
    assert escalations_of(message.ticket) == []


def test_internal_notes_and_automatic_notices_are_not_answers(customer_writes, agent_li, in_acme):
    message = customer_writes("你好")
    ticket = message.ticket
    services.add_note(acting_agent=acting(agent_li), ticket=ticket, text="客户很着急")
    customer_writes("在吗？")
    services.reply_to_customer(acting_agent=SYSTEM, ticket=ticket, text="我们下班了，明天回复。")
    customer_writes("有人吗？")
    assert escalations_of(ticket) == []


def test_contacts_about_one_order_count_across_its_tickets(
    customer_writes, agent_answers, agent_li, in_acme
):
    first = customer_writes("油烟机漏油", conversation="conv-1")
    agent_answers(first.ticket)
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=first.ticket, status=Ticket.Status.SOLVED
    )
    second = customer_writes("又漏油了", conversation="conv-2", subject="又漏油")
    assert second.ticket != first.ticket
    assert escalations_of(second.ticket) == []
    agent_answers(second.ticket)
    third = customer_writes("第三次了", conversation="conv-2")
    assert third.ticket == second.ticket
    [escalation] = escalations_of(second.ticket, Trigger.REPEAT_CONTACT)
    assert "SO20260815" in escalation.reason
    assert escalations_of(first.ticket) == []


def test_contacts_before_the_window_do_not_count(customer_writes, agent_answers, in_acme):
    first = customer_writes("油烟机漏油")
    ticket = first.ticket
    agent_answers(ticket)
    eight_days_ago = timezone.now() - timedelta(days=8)
    Message.objects.filter(ticket=ticket).update(created_at=eight_days_ago)
    customer_writes("还是漏油")
    agent_answers(ticket)
    customer_writes("第三次联系你们了")
    assert escalations_of(ticket) == []  # two in the last 7 days
    agent_answers(ticket)
    customer_writes("第四次")
    assert len(escalations_of(ticket, Trigger.REPEAT_CONTACT)) == 1


def test_the_merchant_tunes_how_many_contacts_escalate(customer_writes, agent_answers, in_acme):
    switch(repeat_contacts=2)
    first = customer_writes("油烟机漏油")
    agent_answers(first.ticket)
    customer_writes("还是漏油")
    assert len(escalations_of(first.ticket, Trigger.REPEAT_CONTACT)) == 1


def test_repeated_contact_does_not_escalate_when_switched_off(
    customer_writes, agent_answers, in_acme
):
    switch(on_repeat_contact=False)
    first = customer_writes("油烟机漏油")
    for text in ("还是漏油", "第三次联系你们了", "第四次"):
        agent_answers(first.ticket)
        customer_writes(text)
    assert escalations_of(first.ticket) == []


# The inbound triggers' statements for one message, however long the order's history: the
# tenant, the message with its ticket, the policy, whether it is the ticket's first, whether it
# follows a reply, and the three reads of the count.
INBOUND_TRIGGERS_BUDGET = 8
# For the message that opened its ticket, with no order: the tenant, the message with its
# ticket, the policy. Its being first, opening an exchange and counting once go without saying.
NEW_TICKET_TRIGGERS_BUDGET = 3


def test_judging_a_message_takes_a_fixed_number_of_statements(
    customer_writes, agent_answers, in_acme, django_assert_max_num_queries
):
    from escalation import trigger_tasks

    switch(repeat_contacts=50)
    first = customer_writes("油烟机漏油")
    for round_ in range(6):
        agent_answers(first.ticket)
        customer_writes(f"第{round_ + 2}次联系")
        customer_writes("在吗？")
    agent_answers(first.ticket)
    last = customer_writes("又来了")
    with django_assert_max_num_queries(INBOUND_TRIGGERS_BUDGET):
        found = trigger_tasks.inbound_triggers(in_acme.pk, last.ticket_id, last.pk)
    assert found == []
    assert escalations.contacts_about(first.ticket, since=timezone.now() - timedelta(days=7)) == 8


def customer_message(ticket: Ticket) -> Message:
    return Message.objects.create(
        ticket=ticket,
        direction=Message.Direction.INBOUND,
        channel=ticket.channel,
        author_customer=ticket.customer,
        body_text="在吗",
    )


def test_judging_the_message_that_opened_a_ticket_reads_only_the_message_and_the_policy(
    in_acme, django_assert_max_num_queries
):
    from escalation import trigger_tasks

    switch(repeat_contacts=2)  # the fewest a merchant may choose
    quiet = services.open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(), subject="发票", channel="email"
    )
    message = customer_message(quiet)
    with django_assert_max_num_queries(NEW_TICKET_TRIGGERS_BUDGET):
        assert (
            trigger_tasks.inbound_triggers(in_acme.pk, quiet.pk, message.pk, new_ticket=True) == []
        )
    assert escalations_of(quiet) == []


def test_the_first_message_of_a_new_ticket_asking_for_a_manager_escalates_it(customer_writes):
    message = customer_writes("订单咨询", subject="我要投诉，找你们经理")
    [escalation] = escalations_of(message.ticket, Trigger.CUSTOMER_REQUEST)
    assert "经理" in escalation.reason


# --- missed service-level targets ------------------------------------------------------------------


def overdue_ticket(**due: object) -> Ticket:
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(), subject="空调不制冷", channel="email"
    )
    Ticket.objects.filter(pk=ticket.pk).update(**due)
    return ticket


def test_a_missed_first_response_escalates_the_ticket(in_acme, django_capture_on_commit_callbacks):
    ticket = overdue_ticket(first_response_due_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert service_levels.record_missed_targets() == 1
    [escalation] = escalations_of(ticket)
    assert escalation.trigger == Trigger.FIRST_RESPONSE_BREACH
    ticket.refresh_from_db()
    assert ticket.escalated_at == escalation.created_at


def test_a_missed_resolution_escalates_the_ticket(in_acme):
    ticket = overdue_ticket(resolution_due_at=timezone.now() - timedelta(minutes=5))
    service_levels.record_missed_targets()
    assert [e.trigger for e in escalations_of(ticket)] == [Trigger.RESOLUTION_BREACH]


def test_a_missed_target_does_not_escalate_when_switched_off_but_is_still_marked(in_acme):
    switch(on_first_response_breach=False)
    ticket = overdue_ticket(first_response_due_at=timezone.now() - timedelta(minutes=5))
    assert service_levels.record_missed_targets() == 1
    ticket.refresh_from_db()
    assert ticket.first_response_breached_at is not None
    assert escalations_of(ticket) == [] and ticket.escalated_at is None


def test_a_ticket_solved_late_is_not_escalated(in_acme):
    now = timezone.now()
    ticket = overdue_ticket(
        resolution_due_at=now - timedelta(hours=2),
        status=Ticket.Status.SOLVED,
        solved_at=now - timedelta(hours=1),
    )
    assert service_levels.record_missed_targets() == 1
    assert escalations_of(ticket) == []


# --- what every escalation does ----------------------------------------------------------------


def test_the_same_trigger_twice_makes_one_open_escalation(acme_ticket, in_acme):
    first = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    again = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    assert again.pk == first.pk
    assert len(escalations_of(acme_ticket)) == 1
    assert AuditEvent.objects.filter(action=AuditKind.ESCALATION_RAISED).count() == 1


def test_the_ticket_is_marked_escalated_once_at_its_first_escalation(
    acme_ticket, in_acme, supervisor_wang
):
    first = escalations.escalate(ticket=acme_ticket, trigger=Trigger.FIRST_RESPONSE_BREACH)
    acme_ticket.refresh_from_db()
    marked = acme_ticket.escalated_at
    assert marked == first.created_at
    escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    escalations.resolve_escalation(
        acting_agent=acting(supervisor_wang), escalation=first, resolution="已回复客户"
    )
    again = escalations.escalate(ticket=acme_ticket, trigger=Trigger.FIRST_RESPONSE_BREACH)
    assert again.pk != first.pk  # resolved: the trigger may escalate again
    acme_ticket.refresh_from_db()
    assert acme_ticket.escalated_at == marked
    assert Escalation.objects.filter(ticket=acme_ticket).count() == 3


def test_an_escalation_keeps_who_had_the_ticket(acme_ticket, in_acme, agent_li):
    from tickets.models import Group

    group = Group.objects.create(name="售后")
    Ticket.objects.filter(pk=acme_ticket.pk).update(assignee=agent_li, group=group)
    acme_ticket.refresh_from_db()
    escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.RESOLUTION_BREACH)
    Ticket.objects.filter(pk=acme_ticket.pk).update(assignee=None)
    escalation.refresh_from_db()
    assert escalation.agent == agent_li and escalation.group == group


def test_an_escalation_is_announced_to_agents_pages(acme_ticket, in_acme, monkeypatch):
    from helpdesk import realtime

    pushed: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        realtime,
        "publish_after_commit",
        lambda tenant_id, event, payload, ticket=None: pushed.append((event, payload)),
    )
    escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.REPEAT_CONTACT)
    assert pushed == [
        (
            "escalation.raised",
            {
                "ticket": acme_ticket.number,
                "escalation": escalation.pk,
                "trigger": "repeat_contact",
            },
        )
    ]


def test_a_switched_off_trigger_writes_nothing(acme_ticket, in_acme):
    switch(on_over_limit=False)
    assert escalations.escalate(ticket=acme_ticket, trigger=Trigger.OVER_LIMIT) is None
    acme_ticket.refresh_from_db()
    assert acme_ticket.escalated_at is None
    assert not Escalation.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditKind.ESCALATION_RAISED).exists()


def test_an_unknown_trigger_is_refused(acme_ticket, in_acme):
    with pytest.raises(BadInput):
        escalations.escalate(ticket=acme_ticket, trigger="mood")


# --- by hand, and settling -------------------------------------------------------------------------


def test_an_agent_escalates_by_hand_only_saying_why(acme_ticket, in_acme, agent_li):
    with pytest.raises(BadInput):
        escalations.escalate_by_hand(acting_agent=acting(agent_li), ticket=acme_ticket, reason=" ")
    assert not Escalation.objects.exists()
    escalation = escalations.escalate_by_hand(
        acting_agent=acting(agent_li), ticket=acme_ticket, reason="客户威胁要投诉到消协"
    )
    assert escalation.trigger == Trigger.MANUAL and escalation.raised_by == agent_li
    event = AuditEvent.objects.get(action=AuditKind.ESCALATION_RAISED)
    assert event.actor == agent_li


def test_escalating_by_hand_switched_off_is_refused(acme_ticket, in_acme, agent_li):
    switch(on_manual=False)
    with pytest.raises(PermissionDenied):
        escalations.escalate_by_hand(
            acting_agent=acting(agent_li), ticket=acme_ticket, reason="客户很生气"
        )
    assert not Escalation.objects.exists()


def test_an_agent_cannot_resolve_an_escalation(acme_ticket, in_acme, agent_li):
    escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    with pytest.raises(PermissionDenied):
        escalations.resolve_escalation(
            acting_agent=acting(agent_li), escalation=escalation, resolution="我处理好了"
        )
    escalation.refresh_from_db()
    assert escalation.is_open


def test_a_supervisor_resolves_saying_how_once(acme_ticket, in_acme, supervisor_wang):
    escalation = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    wang = acting(supervisor_wang)
    with pytest.raises(BadInput):
        escalations.resolve_escalation(acting_agent=wang, escalation=escalation, resolution="")
    resolved = escalations.resolve_escalation(
        acting_agent=wang, escalation=escalation, resolution="已致电客户，补发配件"
    )
    assert resolved.state == Escalation.State.RESOLVED and resolved.resolved_by == supervisor_wang
    assert escalations.open_escalations().count() == 0
    event = AuditEvent.objects.get(action=AuditKind.ESCALATION_RESOLVED)
    assert event.changes["state"] == ["open", "resolved"]
    from helpdesk.errors import InvalidTransition

    with pytest.raises(InvalidTransition):
        escalations.resolve_escalation(acting_agent=wang, escalation=escalation, resolution="再次")


def test_a_decided_approval_settles_its_over_limit_escalation(
    acme_ticket, in_acme, agent_li, supervisor_wang
):
    request = ApprovalRequest.objects.create(
        ticket=acme_ticket,
        requested_by=agent_li,
        kind=RemedyKind.REFUND,
        amount="250",
        currency="CNY",
    )
    escalation = escalations.escalate(
        ticket=acme_ticket,
        trigger=Trigger.OVER_LIMIT,
        raised_by=acting(agent_li),
        approval_request=request,
    )
    request.state = ApprovalRequest.State.COUNTERED
    request.granted_amount = Decimal("150")
    request.decision_reason = "先退一部分"
    request.save()
    escalations.settle_approval_escalation(
        acting_agent=acting(supervisor_wang), approval_request=request
    )
    escalation.refresh_from_db()
    assert escalation.state == Escalation.State.RESOLVED
    assert "150.00" in escalation.resolution and "先退一部分" in escalation.resolution
    assert escalation.resolved_by == supervisor_wang


def test_denying_an_over_limit_request_resolves_the_escalation_it_raised(
    acme_ticket, in_acme, agent_li, supervisor_wang
):
    request = approvals.request_approval(
        acting_agent=acting(agent_li),
        ticket=acme_ticket,
        kind=RemedyKind.REFUND,
        amount="250",
        currency="CNY",
    )
    [escalation] = escalations_of(acme_ticket)
    assert escalation.trigger == Trigger.OVER_LIMIT and escalation.is_open
    approvals.decide_approval(
        acting_agent=acting(supervisor_wang),
        request=request,
        decision="deny",
        reason="已超过退货期",
    )
    escalation.refresh_from_db()
    assert escalation.state == Escalation.State.RESOLVED
    assert "已超过退货期" in escalation.resolution


def test_the_queue_is_oldest_first_and_one_merchants_own(acme_ticket, tenant_globex, in_acme):
    older = escalations.escalate(ticket=acme_ticket, trigger=Trigger.CUSTOMER_REQUEST)
    newer = escalations.escalate(ticket=acme_ticket, trigger=Trigger.REPEAT_CONTACT)
    assert list(escalations.open_escalations()) == [older, newer]
    with tenancy.activate(tenant_globex):
        assert list(escalations.open_escalations()) == []
        globex_boss = MembershipFactory(
            tenant=tenant_globex, user=UserFactory(username="boss.globex"), role=Role.SUPERVISOR
        ).user
        from django.http import Http404

        with pytest.raises(Http404):
            escalations.access_escalation(acting_agent=acting(globex_boss), pk=older.pk)


# --- at the same moment ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs the real unique index")
def test_escalations_at_the_same_moment_make_one(tenant_acme):
    with tenancy.activate(tenant_acme):
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject="漏水", channel="email"
        )
    count = 8
    barrier = threading.Barrier(count)
    found: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with tenancy.activate(tenant_acme):
                barrier.wait(timeout=30)
                escalation = escalations.escalate(ticket=ticket, trigger=Trigger.CUSTOMER_REQUEST)
                found.append(escalation.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with tenancy.activate(tenant_acme):
        assert Escalation.objects.filter(ticket=ticket).count() == 1
        assert len(set(found)) == 1 and len(found) == count
        assert AuditEvent.objects.filter(action=AuditKind.ESCALATION_RAISED).count() == 1
