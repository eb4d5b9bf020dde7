"""Spam and blocked senders: a spam ticket leaves the queue and can come back; a blocked sender's
mail is kept but set aside, routed to nobody, answered by nothing; lifting the block makes
their next mail a normal one."""

from __future__ import annotations

from contextlib import ExitStack
from unittest import mock

import pytest

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import RawInbound
from escalation import trigger_tasks
from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput, PermissionDenied
from tests.channels_in.mails import customer_mail
from tests.conftest import acting, login
from tickets import assignment, services, spam, tasks
from tickets.audit import AuditKind
from tickets.models import (
    AgentPresence,
    AuditEvent,
    Block,
    Group,
    GroupMember,
    Message,
    Ticket,
)

pytestmark = pytest.mark.django_db

SPAMMER = "Cheap Watches <deals@spam.example>"


@pytest.fixture
def after_sales(acme_email, agent_li):
    group = Group.objects.create(name="After-sales 售后", is_default=True)
    GroupMember.objects.create(group=group, user=agent_li)
    return group


def deliver(account, payload: bytes, django_capture_on_commit_callbacks) -> RawInbound:
    with django_capture_on_commit_callbacks(execute=True):
        raw, _ = pipeline.receive(account=account, envelope=Envelope.of(payload), source="webhook")
    raw.refresh_from_db()
    return raw


class Told:
    """What filing a message set in motion: offers to agents, out-of-hours notices, escalation
    checks and live events."""

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.offer = self.stack.enter_context(
            mock.patch.object(tasks.offer_ticket, "delay_on_commit")
        )
        self.out_of_hours = self.stack.enter_context(
            mock.patch.object(tasks.notify_out_of_hours, "delay_on_commit")
        )
        self.triggers = self.stack.enter_context(
            mock.patch.object(trigger_tasks.inbound_triggers, "delay_on_commit")
        )
        self.live = self.stack.enter_context(
            mock.patch.object(realtime, "publish_after_commit", wraps=realtime.publish_after_commit)
        )

    def __enter__(self) -> Told:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    @property
    def live_events(self) -> list[str]:
        return [call.args[1] for call in self.live.call_args_list]


def _mail(django_capture_on_commit_callbacks, account, **kwargs) -> tuple[RawInbound, Told]:
    with Told() as told:
        raw = deliver(account, customer_mail(**kwargs), django_capture_on_commit_callbacks)
    return raw, told


def _block(address: str = "deals@spam.example", **kwargs) -> Block:
    return Block.objects.create(kind="email", value=address, **kwargs)


def _closed_hours(group: Group) -> None:
    Group.objects.filter(pk=group.pk).update(always_open=False, weekly_hours=[[]] * 7)


# --- ingest ----------------------------------------------------------------------------------------


def test_a_blocked_senders_mail_is_kept_on_a_set_aside_ticket_nobody_is_told_of(
    after_sales, acme_email, django_capture_on_commit_callbacks
):
    _closed_hours(after_sales)  # a normal mail now would get the out-of-hours notice
    _block()
    raw, told = _mail(
        django_capture_on_commit_callbacks,
        acme_email,
        sender=SPAMMER,
        subject="Rolex 1折",
        body="Buy now, 我要投诉 supervisor!",
    )
    assert raw.state == "processed"  # the raw mail is kept, and filed
    ticket = Ticket.objects.get()
    assert ticket.messages.get().body_text.startswith("Buy now")
    assert (ticket.ignored_reason, ticket.group, ticket.assignee, ticket.queued_at) == (
        "blocked",
        None,
        None,
        None,
    )
    assert ticket.ignored_at is not None and ticket.number is not None
    assert ticket.first_response_due_at is None
    told.offer.assert_not_called()
    told.out_of_hours.assert_not_called()
    told.triggers.assert_not_called()
    assert told.live_events == []
    event = AuditEvent.objects.get(action=AuditKind.TICKET_IGNORED)
    assert event.actor is None and event.changes == {"ignored_reason": ["", "blocked"]}


def test_the_same_mail_from_a_sender_not_blocked_is_routed_and_answered(
    after_sales, acme_email, django_capture_on_commit_callbacks
):
    """The counterpart of the test above: without a block, every one of those happens."""
    _closed_hours(after_sales)
    _, told = _mail(django_capture_on_commit_callbacks, acme_email, sender=SPAMMER)
    ticket = Ticket.objects.get()
    assert (ticket.ignored_at, ticket.group) == (None, after_sales)
    assert ticket.queued_at is not None
    told.offer.assert_called_once()
    told.out_of_hours.assert_called_once()
    told.triggers.assert_called_once()
    assert "ticket.created" in told.live_events


def test_a_blocked_senders_later_mail_joins_their_set_aside_ticket(
    after_sales, acme_email, django_capture_on_commit_callbacks
):
    _block()
    _mail(
        django_capture_on_commit_callbacks,
        acme_email,
        sender=SPAMMER,
        message_id="<first@spam.example>",
    )
    _mail(
        django_capture_on_commit_callbacks,
        acme_email,
        sender=SPAMMER,
        subject="Re: again",
        in_reply_to="<first@spam.example>",
    )
    ticket = Ticket.objects.get()
    assert ticket.messages.count() == 2
    assert ticket.ignored_reason == "blocked"


def test_a_block_on_a_customer_with_an_open_ticket_leaves_that_ticket_alone(
    after_sales, acme_email, django_capture_on_commit_callbacks
):
    _mail(django_capture_on_commit_callbacks, acme_email, message_id="<normal@example.cn>")
    worked = Ticket.objects.get()
    _block("li.wei@example.cn")
    _mail(
        django_capture_on_commit_callbacks,
        acme_email,
        subject="Re: 吸油烟机噪音很大",
        in_reply_to="<normal@example.cn>",
    )
    worked.refresh_from_db()
    assert worked.messages.count() == 1 and worked.ignored_at is None
    set_aside = Ticket.objects.exclude(pk=worked.pk).get()
    assert set_aside.ignored_reason == "blocked"


def test_lifting_the_block_makes_the_next_mail_a_normal_ticket(
    after_sales, acme_email, supervisor_wang, django_capture_on_commit_callbacks
):
    block = _block()
    _mail(django_capture_on_commit_callbacks, acme_email, sender=SPAMMER)
    spam.lift_block(acting_agent=acting(supervisor_wang), block=block)
    _, told = _mail(django_capture_on_commit_callbacks, acme_email, sender=SPAMMER, subject="Hi")
    normal = Ticket.objects.get(ignored_at__isnull=True)
    assert (normal.subject, normal.group) == ("Hi", after_sales)
    assert normal.queued_at is not None
    told.offer.assert_called_once()
    # The mail kept while blocked stays set aside until someone says it is not spam.
    assert Ticket.objects.filter(ignored_reason="blocked").count() == 1
    event = AuditEvent.objects.get(action=AuditKind.SENDER_BLOCK_LIFTED)
    assert event.actor == supervisor_wang
    assert event.changes["details"]["sender"] == "deals@spam.example"


def test_a_block_is_matched_whatever_the_case_of_the_address(
    after_sales, acme_email, django_capture_on_commit_callbacks
):
    _block()
    _mail(django_capture_on_commit_callbacks, acme_email, sender="Deals <DEALS@Spam.Example>")
    assert Ticket.objects.get().ignored_reason == "blocked"


def test_another_merchants_block_does_not_touch_this_merchants_mail(
    after_sales, acme_email, tenant_globex, django_capture_on_commit_callbacks
):
    with tenancy.activate(tenant_globex):
        _block()
    _mail(django_capture_on_commit_callbacks, acme_email, sender=SPAMMER)
    assert Ticket.objects.get().ignored_at is None


# --- routing -----------------------------------------------------------------------------------------


def test_routing_never_hands_out_a_set_aside_ticket(after_sales, agent_li, in_acme):
    AgentPresence.objects.create(user=agent_li, status=AgentPresence.Status.ONLINE)
    from tests.factories import CustomerFactory

    ticket = services.open_ticket(
        acting_agent=acting(agent_li),
        customer=CustomerFactory(email="x@example.cn"),
        subject="Spam",
        channel="email",
    )
    # Even a stale queue stamp on a set-aside ticket is not handed out.
    Ticket.objects.filter(pk=ticket.pk).update(
        group=after_sales, ignored_at=ticket.created_at, ignored_reason="spam"
    )
    assert assignment.offer_ticket(ticket_id=ticket.pk) is None
    assert assignment.hand_out_queued() == 0
    assert list(assignment.queue_for(after_sales)) == []
    ticket.refresh_from_db()
    assert ticket.assignee is None


# --- marking spam -----------------------------------------------------------------------------------


def _inbound_ticket(group: Group | None, sender: str = "deals@spam.example") -> Ticket:
    from tests.factories import CustomerFactory

    customer = CustomerFactory(name="Deals", email=sender)
    ticket = services.open_ticket(
        acting_agent=services.SYSTEM, customer=customer, subject="Rolex", channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject="Rolex",
        body_text="Buy now",
        metadata={"from": sender},
    )
    Ticket.objects.filter(pk=ticket.pk).update(group=group)
    ticket.refresh_from_db()
    return ticket


def test_an_agent_marks_a_ticket_as_spam_and_it_leaves_their_work_and_the_queue(
    after_sales, agent_li, in_acme
):
    ticket = _inbound_ticket(after_sales)
    services.assign_ticket(acting_agent=acting(agent_li), ticket=ticket, assignee=agent_li)
    with mock.patch.object(tasks.hand_out_queued, "delay_on_commit") as hand_out:
        spam.mark_spam(acting_agent=acting(agent_li), ticket=ticket)
    ticket.refresh_from_db()
    assert (ticket.ignored_reason, ticket.assignee, ticket.queued_at) == ("spam", None, None)
    hand_out.assert_called_once()  # Li has room for the next one
    event = AuditEvent.objects.get(action=AuditKind.TICKET_MARKED_SPAM)
    assert event.changes == {"ignored_reason": ["", "spam"], "assignee": [agent_li.pk, None]}


def test_not_spam_puts_the_ticket_back_in_the_queue_routed(agent_li, after_sales, in_acme):
    ticket = _inbound_ticket(None)
    spam.mark_spam(acting_agent=acting(agent_li), ticket=ticket)
    with mock.patch.object(tasks.offer_ticket, "delay_on_commit") as offer:
        spam.not_spam(acting_agent=acting(agent_li), ticket=ticket)
    ticket.refresh_from_db()
    assert (ticket.ignored_at, ticket.ignored_reason, ticket.group) == (None, "", after_sales)
    assert ticket.queued_at is not None
    offer.assert_called_once()
    assert AuditEvent.objects.filter(action=AuditKind.TICKET_NOT_SPAM).exists()
    assert AuditEvent.objects.filter(action=AuditKind.TICKET_ROUTED, actor=agent_li).exists()


def test_an_agent_cannot_mark_a_ticket_of_another_group(agent_li, in_acme):
    other = Group.objects.create(name="VIP 专席")
    ticket = _inbound_ticket(other)
    with pytest.raises(PermissionDenied):
        spam.mark_spam(acting_agent=acting(agent_li), ticket=ticket)
    response = login(agent_li).post(f"/tickets/{ticket.number}/spam/")
    assert response.status_code == 404
    ticket.refresh_from_db()
    assert ticket.ignored_at is None


def test_the_ticket_page_marks_spam_and_says_why_it_is_set_aside(agent_li, after_sales, in_acme):
    ticket = _inbound_ticket(after_sales)
    client = login(agent_li)
    assert "Mark as spam" in client.get(f"/tickets/{ticket.number}/").content.decode()
    page = client.post(f"/tickets/{ticket.number}/spam/", follow=True).content.decode()
    assert f"Ticket #{ticket.number} is marked as spam" in page
    assert "Set aside as spam" in page
    assert "Not spam" in page
    page = client.post(f"/tickets/{ticket.number}/not-spam/", follow=True).content.decode()
    assert "is back in the queue" in page
    ticket.refresh_from_db()
    assert ticket.ignored_at is None


# --- blocking from the ticket -----------------------------------------------------------------------


def test_an_agent_blocks_the_sender_from_the_ticket(agent_li, after_sales, in_acme):
    ticket = _inbound_ticket(after_sales)
    client = login(agent_li)
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert 'value="email:deals@spam.example"' in page
    response = client.post(
        f"/tickets/{ticket.number}/block/",
        {"sender": "email:deals@spam.example", "reason": "广告"},
        follow=True,
    )
    page = response.content.decode()
    assert "deals@spam.example is blocked" in page
    assert "the sender is blocked" in page  # the banner
    block = Block.objects.get()
    assert (block.kind, block.value, block.reason, block.created_by) == (
        "email",
        "deals@spam.example",
        "广告",
        agent_li,
    )
    assert spam.is_blocked("email", "deals@spam.example")
    ticket.refresh_from_db()
    assert ticket.ignored_reason == "blocked"
    event = AuditEvent.objects.get(action=AuditKind.SENDER_BLOCKED)
    assert event.changes["details"]["ticket"] == ticket.number
    # ... and lifts it again from the same ticket.
    client.post(f"/tickets/{ticket.number}/blocks/{block.pk}/lift/")
    block.refresh_from_db()
    assert block.lifted_by == agent_li
    assert not spam.is_blocked("email", "deals@spam.example")


def test_only_the_tickets_own_senders_can_be_blocked_from_it(agent_li, after_sales, in_acme):
    ticket = _inbound_ticket(after_sales)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/block/", {"sender": "email:someone.else@example.cn"}
    )
    assert response.status_code == 400
    for bad in ("", "nonsense", "external:123"):
        response = login(agent_li).post(f"/tickets/{ticket.number}/block/", {"sender": bad})
        assert response.status_code == 400, bad
    assert not Block.objects.exists()


def test_blocking_twice_keeps_one_block(agent_li, after_sales, in_acme):
    ticket = _inbound_ticket(after_sales)
    for _ in range(2):
        spam.block_sender(
            acting_agent=acting(agent_li), kind="email", value="Deals@spam.example", ticket=ticket
        )
    assert Block.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditKind.SENDER_BLOCKED).count() == 1


def test_an_agent_may_block_from_tickets_only(agent_li, in_acme):
    with pytest.raises(PermissionDenied):
        spam.block_sender(acting_agent=acting(agent_li), kind="email", value="a@b.example")
    with pytest.raises(BadInput):
        spam.block_sender(acting_agent=acting(agent_li), kind="external", value="42")
    assert not Block.objects.exists()


# --- the settings page -------------------------------------------------------------------------------


def test_supervisors_list_and_lift_blocks(supervisor_wang, agent_li, in_acme):
    from helpdesk.models import Membership

    Membership.objects.filter(user=agent_li).update(display_name="李丽")
    active = _block(created_by=agent_li, reason="广告")
    _block("old@spam.example", lifted_at=active.created_at, lifted_by=supervisor_wang)
    client = login(supervisor_wang)
    page = client.get("/settings/blocked/").content.decode()
    assert "deals@spam.example" in page and "广告" in page and "李丽" in page
    assert "Lifted blocks" in page and "old@spam.example" in page
    response = client.post(f"/settings/blocked/{active.pk}/lift/", follow=True)
    assert "is no longer blocked" in response.content.decode()
    active.refresh_from_db()
    assert active.lifted_at is not None and active.lifted_by == supervisor_wang


def test_agents_do_not_get_the_blocked_senders_page(agent_li, in_acme):
    block = _block()
    client = login(agent_li)
    assert client.get("/settings/blocked/").status_code == 403
    assert client.post(f"/settings/blocked/{block.pk}/lift/").status_code == 403
    block.refresh_from_db()
    assert block.lifted_at is None


def test_another_merchants_block_is_404(supervisor_wang, tenant_globex, in_acme):
    with tenancy.activate(tenant_globex):
        theirs = _block()
    response = login(supervisor_wang).post(f"/settings/blocked/{theirs.pk}/lift/")
    assert response.status_code == 404
    with tenancy.activate(tenant_globex):
        theirs.refresh_from_db()
        assert theirs.lifted_at is None


def test_an_agent_who_had_the_ticket_only_by_assignment_lands_on_the_list(agent_li, in_acme):
    other = Group.objects.create(name="VIP 专席")
    ticket = _inbound_ticket(other)
    Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
    response = login(agent_li).post(f"/tickets/{ticket.number}/spam/")
    assert response.status_code == 302 and response.url == "/tickets/"
    ticket.refresh_from_db()
    assert (ticket.ignored_reason, ticket.assignee) == ("spam", None)


def test_a_supervisor_blocks_an_address_by_hand_and_a_bad_one_is_a_form_error(
    supervisor_wang, agent_li, in_acme
):
    client = login(supervisor_wang)
    response = client.post(
        "/settings/blocked/", {"kind": "email", "value": "Deals@Spam.Example", "reason": "广告"}
    )
    assert response.status_code == 302
    assert spam.is_blocked("email", "deals@spam.example")
    response = client.post("/settings/blocked/", {"kind": "email", "value": "not an address"})
    assert response.status_code == 400
    assert "is not an email address" in response.content.decode()
    response = client.post("/settings/blocked/", {"kind": "external", "value": "42"})
    assert response.status_code == 400
    refused = login(agent_li).post("/settings/blocked/", {"kind": "email", "value": "a@b.example"})
    assert refused.status_code == 403
    assert Block.objects.count() == 1
