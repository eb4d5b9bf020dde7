"""An agent's reply leaves through a real SMTP server and the customer's answer threads back."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from email import policy

import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from channels_in.base import Envelope
from channels_in.models import Mailbox
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.conftest import acting, login
from tickets import services
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def mailbox_on_smtp(acme_mailbox: Mailbox, smtp_server, allow_egress) -> Mailbox:
    _, port = smtp_server
    allow_egress("127.0.0.1", port)
    acme_mailbox.smtp_host = "127.0.0.1"
    acme_mailbox.smtp_port = port
    acme_mailbox.smtp_use_tls = False
    acme_mailbox.save()
    return acme_mailbox


def post_mail(account, payload: bytes) -> None:
    response = Client().post(
        f"/inbound/{account.tenant.slug}/email/{account.pk}/",
        payload,
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=account.inbound_secret,
    )
    assert response.status_code == 202, response.content


def test_agent_reply_goes_out_by_smtp_and_the_customers_answer_threads_back(
    mailbox_on_smtp, smtp_server, agent_li, tenant_acme
):
    inbox, _ = smtp_server
    account = mailbox_on_smtp.account
    post_mail(account, customer_mail(message_id="<q1@example.cn>", subject="退款进度"))
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()

    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {"text": "您好，退款已经提交，3-5 个工作日到账。", "status": "pending"},
        follow=True,
    )
    assert "Reply sent." in response.content.decode()

    assert len(inbox.received) == 1
    mail_from, recipients, content = inbox.received[0]
    sent = email.message_from_bytes(content, policy=policy.default)
    assert mail_from == "support@acme.example"
    assert recipients == ["li.wei@example.cn"]
    assert sent["From"].addresses[0].addr_spec == "support@acme.example"
    assert sent["In-Reply-To"] == "<q1@example.cn>"
    assert f"[#{ticket.number}]" in sent["Subject"]
    assert "退款已经提交" in sent.get_body(("plain",)).get_content()
    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        assert reply.delivery_state == "sent"
        assert sent["Message-ID"] == f"<{reply.external_id}>"
        ticket.refresh_from_db()
        assert ticket.status == "pending"

    # The customer answers from a mail client that keeps In-Reply-To but changes the subject.
    post_mail(
        account,
        customer_mail(subject="Re: 退款", body="收到，谢谢！", in_reply_to=sent["Message-ID"]),
    )
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.count() == 1
        ticket.refresh_from_db()
        assert [m.direction for m in ticket.messages.order_by("created_at")] == [
            "inbound",
            "outbound",
            "inbound",
        ]
        assert ticket.messages.order_by("-created_at").first().body_text == "收到，谢谢！"
        assert ticket.status == "open"  # the customer answered: back to the agents

    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "收到，谢谢！" in page and "Sent" in page


def test_a_reply_that_cannot_be_delivered_shows_failed_and_can_be_sent_again(
    acme_mailbox, smtp_server, agent_li, tenant_acme, allow_egress
):
    inbox, port = smtp_server
    acme_mailbox.smtp_host = "127.0.0.1"
    acme_mailbox.smtp_port = free_port()  # nothing listens here
    allow_egress("127.0.0.1", acme_mailbox.smtp_port)
    allow_egress("127.0.0.1", port)
    acme_mailbox.smtp_use_tls = False
    acme_mailbox.save()
    post_mail(acme_mailbox.account, customer_mail())
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
    client = login(agent_li)
    told = client.post(f"/tickets/{ticket.number}/reply/", {"text": "We are on it."}, follow=True)
    assert "The reply could not be sent: SMTP delivery failed" in told.content.decode()
    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    assert "SMTP delivery failed" in page and "Send again" in page
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "new"  # not "pending": the customer never got the reply
    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        assert reply.delivery_state == "failed"
        acme_mailbox.smtp_port = port
        acme_mailbox.save()
    client.post(f"/tickets/{ticket.number}/messages/{reply.pk}/resend/")
    with tenancy.activate(tenant_acme):
        reply.refresh_from_db()
        assert reply.delivery_state == "sent"
    assert len(inbox.received) == 1


def test_an_empty_reply_is_refused_with_a_reason(acme_mailbox, agent_li, tenant_acme):
    post_mail(acme_mailbox.account, customer_mail())
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {"text": "   "},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER=f"/tickets/{ticket.number}/",
        follow=True,
    )
    assert "A reply needs some text" in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(direction="outbound").exists()


def test_a_reply_task_delivered_twice_sends_one_mail(
    mailbox_on_smtp, smtp_server, agent_li, tenant_acme
):
    from channels_in.tasks import deliver_message

    inbox, _ = smtp_server
    post_mail(mailbox_on_smtp.account, customer_mail())
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
        reply = services.reply_to_customer(
            acting_agent=acting(agent_li), ticket=ticket, text="Refund approved."
        )
    deliver_message.apply(args=[tenant_acme.pk, reply.pk])  # the broker redelivers the task
    assert len(inbox.received) == 1
    with tenancy.activate(tenant_acme):
        reply.refresh_from_db()
        assert (reply.delivery_state, reply.delivery_attempts) == ("sent", 1)


def test_a_reply_whose_mailbox_is_gone_fails_visibly_and_can_be_sent_again(
    mailbox_on_smtp, smtp_server, agent_li, tenant_acme
):
    from datetime import timedelta

    from django.utils import timezone

    from channels_in import outbound

    post_mail(mailbox_on_smtp.account, customer_mail())
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("channels_in.email.EmailAdapter.send", _raise_missing_mailbox)
            reply = services.reply_to_customer(
                acting_agent=acting(agent_li), ticket=ticket, text="On its way."
            )
        reply.refresh_from_db()
        assert reply.delivery_state == "failed"
        assert "mailbox" in reply.delivery_error
        # A send whose worker died stays "sending"; after a while the agent may send again.
        Message.objects.filter(pk=reply.pk).update(
            delivery_state="sending", delivery_changed_at=timezone.now() - timedelta(minutes=11)
        )
        reply.refresh_from_db()
        assert reply.can_be_resent
        outbound.resend(acting_agent=acting(agent_li), message=reply)
        reply.refresh_from_db()
        assert reply.delivery_state == "sent"


def _raise_missing_mailbox(self, reply):
    raise Mailbox.DoesNotExist("ChannelAccount has no mailbox")


def test_replying_on_a_channel_without_a_mailbox_is_a_clear_error(agent_li, tenant_acme):
    from channels_in import pipeline
    from channels_in.models import ChannelAccount

    with tenancy.activate(tenant_acme):
        bare = ChannelAccount.objects.create(kind="email", name="Half set up")
        pipeline.receive(account=bare, envelope=Envelope.of(customer_mail()), source="webhook")
        ticket = Ticket.objects.get()
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {"text": "hello"},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER=f"/tickets/{ticket.number}/",
        follow=True,
    )
    assert response.status_code == 200
    assert "no active Email channel to reply on" in response.content.decode()
