"""The inbound pipeline: nothing a customer sends is lost, duplicated or misfiled."""

from __future__ import annotations

from unittest import mock

import pytest

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.channels_in.mails import customer_mail
from tests.conftest import acting
from tests.factories import CustomerFactory, OrderFactory
from tickets import services
from tickets.models import Customer, Message, Ticket

pytestmark = pytest.mark.django_db


def deliver(account, payload: bytes, django_capture_on_commit_callbacks) -> RawInbound:
    with django_capture_on_commit_callbacks(execute=True):
        raw, _ = pipeline.receive(account=account, envelope=Envelope.of(payload), source="webhook")
    raw.refresh_from_db()
    return raw


def test_a_customer_email_becomes_a_ticket_with_the_message(
    acme_email, django_capture_on_commit_callbacks
):
    raw = deliver(acme_email, customer_mail(), django_capture_on_commit_callbacks)
    assert raw.state == "processed"
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.channel, ticket.status) == ("吸油烟机噪音很大", "email", "new")
    assert ticket.customer.name == "李伟"
    assert ticket.customer.primary_email == "li.wei@example.cn"
    assert ticket.messages.get().body_text == "你好，我的吸油烟机安装后噪音很大。"
    assert raw.ticket == ticket


def test_the_same_message_posted_three_times_is_one_message(
    acme_email, django_capture_on_commit_callbacks
):
    payload = customer_mail(message_id="<once@example.cn>")
    for _ in range(3):
        deliver(acme_email, payload, django_capture_on_commit_callbacks)
    assert Message.objects.count() == 1
    assert RawInbound.objects.count() == 1
    assert Ticket.objects.count() == 1


def test_the_same_mail_delivered_to_two_mailboxes_is_one_message(
    acme_email, django_capture_on_commit_callbacks
):
    from channels_in.models import ChannelAccount, Mailbox

    sales = ChannelAccount.objects.create(kind="email", name="Sales")
    Mailbox.objects.create(account=sales, address="sales@acme.example")
    payload = customer_mail(message_id="<cc-both@example.cn>")
    deliver(acme_email, payload, django_capture_on_commit_callbacks)
    second = deliver(sales, payload, django_capture_on_commit_callbacks)
    assert second.state == "duplicate"
    assert Message.objects.count() == 1


def test_a_reply_lands_on_the_original_ticket(acme_email, django_capture_on_commit_callbacks):
    deliver(
        acme_email,
        customer_mail(message_id="<first@example.cn>"),
        django_capture_on_commit_callbacks,
    )
    ticket = Ticket.objects.get()
    services.change_ticket_status(acting_agent=SYSTEM, ticket=ticket, status="solved")
    deliver(
        acme_email,
        customer_mail(
            subject="Re: 吸油烟机噪音很大", body="还是很吵。", in_reply_to="<first@example.cn>"
        ),
        django_capture_on_commit_callbacks,
    )
    ticket.refresh_from_db()
    assert Ticket.objects.count() == 1
    assert ticket.messages.count() == 2
    assert ticket.status == "open"  # the customer answered a solved ticket: it reopens
    assert ticket.reopened_count == 1


def test_a_reply_to_a_closed_ticket_opens_a_new_one(acme_email, django_capture_on_commit_callbacks):
    deliver(
        acme_email, customer_mail(message_id="<old@example.cn>"), django_capture_on_commit_callbacks
    )
    services.change_ticket_status(acting_agent=SYSTEM, ticket=Ticket.objects.get(), status="closed")
    deliver(
        acme_email,
        customer_mail(in_reply_to="<old@example.cn>"),
        django_capture_on_commit_callbacks,
    )
    assert Ticket.objects.count() == 2


def test_a_new_mail_from_the_same_customer_joins_their_open_ticket(
    acme_email, django_capture_on_commit_callbacks
):
    deliver(acme_email, customer_mail(), django_capture_on_commit_callbacks)
    deliver(
        acme_email,
        customer_mail(subject="补充照片", body="附上照片。"),
        django_capture_on_commit_callbacks,
    )
    deliver(
        acme_email,
        customer_mail(
            sender="Emily <emily@example.com>", subject="Invoice", body="Please send it."
        ),
        django_capture_on_commit_callbacks,
    )
    assert Ticket.objects.count() == 2
    assert Ticket.objects.get(customer__name="李伟").messages.count() == 2


def test_a_customer_is_recognised_by_any_identity(acme_email, django_capture_on_commit_callbacks):
    known = CustomerFactory(name="李伟", email="li.wei@example.cn")
    services.add_identity(acting_agent=SYSTEM, customer=known, kind="phone", value="13800138000")
    deliver(
        acme_email, customer_mail(sender="LI.WEI@example.cn"), django_capture_on_commit_callbacks
    )
    assert Customer.objects.count() == 1
    assert Ticket.objects.get().customer == known


def test_an_order_number_in_the_mail_links_the_customers_order(
    acme_email, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    order = OrderFactory(customer=customer, number="SO20261105")
    OrderFactory(number="SO20261199")  # somebody else's order is never linked
    deliver(
        acme_email,
        customer_mail(body="订单号：SO20261105，还有 SO20261199 的问题。"),
        django_capture_on_commit_callbacks,
    )
    assert Ticket.objects.get().order == order


def test_auto_replies_never_open_tickets(acme_email, django_capture_on_commit_callbacks):
    raw = deliver(
        acme_email,
        customer_mail(
            subject="Automatic reply: 吸油烟机", headers={"Auto-Submitted": "auto-replied"}
        ),
        django_capture_on_commit_callbacks,
    )
    assert raw.state == "ignored"
    assert "auto" in raw.note.lower()
    assert Ticket.objects.count() == 0


def test_a_message_whose_processing_raises_is_kept_as_failed_and_succeeds_on_retry(
    acme_email, admin_zhao, django_capture_on_commit_callbacks
):
    with mock.patch(
        "tickets.services.find_order_reference", side_effect=RuntimeError("orders DB down")
    ):
        raw = deliver(acme_email, customer_mail(), django_capture_on_commit_callbacks)
    assert raw.state == "failed"
    assert "orders DB down" in raw.error
    assert Ticket.objects.count() == 0
    assert b"Subject:" in bytes(raw.payload)  # the raw payload is kept as received

    with django_capture_on_commit_callbacks(execute=True):
        pipeline.retry_inbound(acting_agent=acting(admin_zhao), raw=raw)
    raw.refresh_from_db()
    assert raw.state == "processed"
    assert raw.error == ""
    assert raw.attempts == 2
    assert Ticket.objects.get().messages.count() == 1


def test_a_stuck_payload_is_requeued_by_the_beat_task(
    acme_email, tenant_acme, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from channels_in.tasks import requeue_stale_inbound

    raw, _ = pipeline.store_raw(
        account=acme_email, envelope=Envelope.of(customer_mail()), source="webhook"
    )
    RawInbound.objects.filter(pk=raw.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
    with tenancy.deactivate(), django_capture_on_commit_callbacks(execute=True):
        assert requeue_stale_inbound.apply().get() == 1
    raw.refresh_from_db()
    assert raw.state == "processed"
    assert Ticket.objects.count() == 1


def test_pipeline_keeps_tenants_apart(
    acme_email, tenant_globex, django_capture_on_commit_callbacks
):
    from channels_in.models import ChannelAccount, Mailbox

    payload = customer_mail(message_id="<same@example.cn>")
    deliver(acme_email, payload, django_capture_on_commit_callbacks)
    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="email", name="Globex")
        Mailbox.objects.create(account=account, address="help@globex.example")
        raw = deliver(account, payload, django_capture_on_commit_callbacks)
        # Same Message-ID at another merchant is that merchant's own, separate message.
        assert raw.state == "processed"
        assert Ticket.objects.count() == 1
    assert Ticket.objects.count() == 1


def test_knowing_a_message_id_does_not_let_a_stranger_into_a_customers_ticket(
    acme_email, django_capture_on_commit_callbacks
):
    from channels_in.email import reply_address

    deliver(
        acme_email,
        customer_mail(sender="Alice <alice@example.com>", message_id="<alice-1@example.com>"),
        django_capture_on_commit_callbacks,
    )
    alice_ticket = Ticket.objects.get()
    deliver(
        acme_email,
        customer_mail(
            sender="Mallory <mallory@evil.example>",
            subject="Re: 吸油烟机噪音很大",
            in_reply_to="<alice-1@example.com>",
        ),
        django_capture_on_commit_callbacks,
    )
    assert Ticket.objects.count() == 2
    assert alice_ticket.messages.count() == 1
    assert reply_address(alice_ticket) == "alice@example.com"


def test_a_colleague_copied_on_the_mail_may_reply_into_the_ticket(
    acme_email, django_capture_on_commit_callbacks
):
    from channels_in.email import reply_address

    deliver(
        acme_email,
        customer_mail(
            sender="Alice <alice@example.com>",
            message_id="<alice-2@example.com>",
            headers={"Cc": "Bob <bob@example.com>"},
        ),
        django_capture_on_commit_callbacks,
    )
    deliver(
        acme_email,
        customer_mail(sender="Bob <bob@example.com>", in_reply_to="<alice-2@example.com>"),
        django_capture_on_commit_callbacks,
    )
    ticket = Ticket.objects.get()
    assert ticket.messages.count() == 2
    assert reply_address(ticket) == "alice@example.com"  # replies still go to the customer


def test_mail_the_database_could_not_hold_as_sent_is_cleaned_not_lost(
    acme_email, django_capture_on_commit_callbacks
):
    long_name = "店" * 300
    raw = deliver(
        acme_email,
        customer_mail(
            sender=f'"{long_name}" <long@example.cn>',
            subject="退款\x00申请",
            body="第一行\x00第二行",
            message_id="<abc\x00def@example.cn>",
        ),
        django_capture_on_commit_callbacks,
    )
    assert raw.state == "processed", raw.error
    assert raw.external_id.startswith("sha256:")
    message = Message.objects.get()
    assert message.ticket.subject == "退款申请"
    assert message.body_text == "第一行第二行"
    assert message.author_customer.name == long_name[:200]


def _on(year: int, month: int = 1, day: int = 1):
    from datetime import UTC, datetime

    return datetime(year, month, day, 9, 30, tzinfo=UTC)


def test_an_archived_mail_never_joins_an_old_ticket_by_the_time_window_alone(
    acme_email, django_capture_on_commit_callbacks
):
    old = deliver(
        acme_email,
        customer_mail(subject="2012 问题", date=_on(2012), message_id="<a2012@example.cn>"),
        django_capture_on_commit_callbacks,
    )
    later = deliver(
        acme_email,
        customer_mail(subject="2018 问题", date=_on(2018)),
        django_capture_on_commit_callbacks,
    )
    assert old.ticket.status == "new"  # still open, and the same customer on the same channel
    assert later.ticket != old.ticket


def test_archived_mails_days_apart_thread_by_their_own_dates(
    acme_email, django_capture_on_commit_callbacks
):
    first = deliver(
        acme_email,
        customer_mail(subject="洗碗机漏水", date=_on(2018, 3, 1)),
        django_capture_on_commit_callbacks,
    )
    second = deliver(
        acme_email,
        customer_mail(subject="还在漏水", date=_on(2018, 3, 2)),
        django_capture_on_commit_callbacks,
    )
    assert second.ticket == first.ticket
    # A mail written today does not join a ticket whose conversation happened in 2018.
    today = deliver(acme_email, customer_mail(subject="新问题"), django_capture_on_commit_callbacks)
    assert today.ticket != first.ticket


def test_reply_headers_and_ticket_tokens_thread_across_any_gap(
    acme_email, django_capture_on_commit_callbacks
):
    old = deliver(
        acme_email,
        customer_mail(subject="保修", date=_on(2012), message_id="<warranty-2012@example.cn>"),
        django_capture_on_commit_callbacks,
    )
    reply = deliver(
        acme_email,
        customer_mail(subject="Re: 保修", date=_on(2018), in_reply_to="<warranty-2012@example.cn>"),
        django_capture_on_commit_callbacks,
    )
    token = deliver(
        acme_email,
        customer_mail(subject=f"还是保修 [#{old.ticket.number}]", date=_on(2020)),
        django_capture_on_commit_callbacks,
    )
    assert reply.ticket == old.ticket == token.ticket
