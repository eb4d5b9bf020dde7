"""A reply the mail server will not take: refused (fails at once, with the server's reason),
deferred or unreachable (retried with backoff, "Send now" sends it once), or a refused login
(the channel is paused and its admins see why)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from channels_in import outbound, tasks
from channels_in.crypto import encrypt_secret
from channels_in.email import ChannelRefused, smtp_failure
from channels_in.models import ChannelAccount, Mailbox
from channels_in.tasks import MAX_RETRIES, backoff, deliver_message
from helpdesk import tenancy
from helpdesk.celery import app
from helpdesk.models import Role
from tests.channels_in.mails import customer_mail
from tests.channels_in.polling import wait_for
from tests.channels_in.test_email_roundtrip import free_port, post_mail
from tests.conftest import acting, login
from tests.factories import MembershipFactory, UserFactory
from tickets import services
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

SERVER = "smtp.acme.example:587"
REFUSED_RECIPIENT = "550 5.1.1 <li.wei@example.cn>: Recipient address rejected: User unknown"
GREYLISTED = "450 4.2.0 <li.wei@example.cn>: Greylisted, try again in 5 minutes"


class ScriptedServer:
    """An SMTP server that answers RCPT with the replies a test lines up, then accepts mail."""

    def __init__(self) -> None:
        self.rcpt_replies: list[str] = []
        self.received: list[bytes] = []
        self.logins = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(envelope.original_content)
        return "250 Message accepted for delivery"

    def refuse_login(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins += 1
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8


@pytest.fixture
def smtp() -> Iterator[tuple[ScriptedServer, int]]:
    server = ScriptedServer()
    port = free_port()
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=port,
        authenticator=server.refuse_login,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()


@pytest.fixture
def mailbox(acme_mailbox: Mailbox, smtp, allow_egress) -> Mailbox:
    _, port = smtp
    allow_egress("127.0.0.1", port)
    acme_mailbox.smtp_host = "127.0.0.1"
    acme_mailbox.smtp_port = port
    acme_mailbox.smtp_use_tls = False
    acme_mailbox.save()
    return acme_mailbox


@pytest.fixture
def ticket(mailbox: Mailbox, tenant_acme) -> Ticket:
    post_mail(mailbox.account, customer_mail(subject="退款进度"))
    with tenancy.activate(tenant_acme):
        return Ticket.objects.get()


@pytest.fixture
def owner_zhang(tenant_acme):
    return MembershipFactory(
        tenant=tenant_acme, user=UserFactory(username="zhang.acme"), role=Role.OWNER
    ).user


def reply_of(tenant, ticket: Ticket) -> Message:
    with tenancy.activate(tenant):
        return Message.objects.filter(ticket=ticket, direction="outbound").latest("created_at")


def page_of(agent, ticket: Ticket) -> str:
    return login(agent).get(f"/tickets/{ticket.number}/").content.decode()


def queued_reply(agent, ticket: Ticket, monkeypatch) -> Message:
    """A reply written and queued but not yet delivered: the test plays the worker."""
    with tenancy.activate(ticket.tenant), monkeypatch.context() as queue_only:
        queue_only.setattr(deliver_message, "delay", lambda *args: None)
        return services.reply_to_customer(
            acting_agent=acting(agent), ticket=ticket, text="退款已提交。"
        )


def first_try_by_a_worker(tenant, message_id: int, monkeypatch) -> dict:
    """Run the delivery task as a worker's first try (not inline, so it may retry) and return
    the retry it scheduled, if any."""
    scheduled: dict = {}

    def retry(*, exc, countdown, kwargs):
        scheduled.update(countdown=countdown, kwargs=kwargs, error=exc.message)
        return Retry("scheduled", when=countdown)

    monkeypatch.setattr(deliver_message, "retry", retry)
    deliver_message.push_request(retries=0, is_eager=False, called_directly=False)
    try:
        with tenancy.activate(tenant):
            deliver_message.run(tenant.pk, message_id)
    except Retry:
        pass
    finally:
        deliver_message.pop_request()
    return scheduled


# What the SMTP server's answer means ------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "permanent", "pauses", "shown"),
    [
        (
            smtplib.SMTPRecipientsRefused({"li.wei@example.cn": (550, b"5.1.1 User unknown")}),
            True,
            False,
            "refused the recipient li.wei@example.cn (550 5.1.1 User unknown)",
        ),
        (
            smtplib.SMTPRecipientsRefused({"li.wei@example.cn": (450, b"4.2.0 Greylisted")}),
            False,
            False,
            "450 4.2.0 Greylisted",
        ),
        (
            smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam"),
            True,
            False,
            "refused the reply: 554 5.7.1 Message rejected as spam",
        ),
        (
            smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "support@acme.example"),
            True,
            False,
            "553 5.7.1 Sender not allowed",
        ),
        (smtplib.SMTPDataError(451, b"4.3.0 Try again later"), False, False, "deferred"),
        (smtplib.SMTPResponseException(421, b"4.7.0 Too busy"), False, False, "421 4.7.0"),
        (
            smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"),
            True,
            True,
            "refused the channel's username or password: 535 5.7.8",
        ),
        (
            smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure"),
            False,
            False,
            "454 4.7.0",
        ),
        (
            smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."),
            True,
            True,
            "SMTP AUTH extension not supported",
        ),
    ],
)
def test_smtp_failures_are_permanent_retried_or_pause_the_channel(error, permanent, pauses, shown):
    failure = smtp_failure(error, server=SERVER)
    assert failure.permanent is permanent
    assert isinstance(failure, ChannelRefused) is pauses
    assert failure.message.startswith("SMTP delivery failed")
    assert shown in failure.message


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), "unexpectedly closed"),
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (TimeoutError("timed out"), "timed out"),
        (smtplib.SMTPConnectError(554, b"SSH-2.0-OpenSSH_9.2p1 Debian-2"), "OpenSSH"),
    ],
)
def test_network_failures_are_retried_and_told_alike_with_the_details_only_in_the_log(
    error, detail, caplog
):
    failure = smtp_failure(error, server=SERVER)

    assert not failure.permanent and not isinstance(failure, ChannelRefused)
    assert failure.message.startswith(
        "SMTP delivery failed: Could not connect to the mail server smtp.acme.example:587 "
        "(reference E-"
    )
    assert detail not in failure.message
    reference = failure.message.rsplit("reference ", 1)[1].rstrip(")")
    logged = [r.getMessage() for r in caplog.records if reference in r.getMessage()]
    assert logged and detail in logged[0]


def test_the_broker_holds_a_retry_longer_than_the_longest_backoff():
    longest_countdown = max(backoff(retries) for retries in range(MAX_RETRIES))
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility_timeout > longest_countdown
    assert app.conf.broker_transport_options["visibility_timeout"] == visibility_timeout


# 5xx: failed at once ----------------------------------------------------------------------


def test_a_refused_recipient_fails_the_reply_at_once_with_the_servers_reason(
    smtp, ticket, agent_li, tenant_acme, monkeypatch
):
    server, _ = smtp
    server.rcpt_replies = [REFUSED_RECIPIENT]
    reply = queued_reply(agent_li, ticket, monkeypatch)
    # A worker's first try, with retries to spare: a 5xx still schedules none.
    assert first_try_by_a_worker(tenant_acme, reply.pk, monkeypatch) == {}

    reply = reply_of(tenant_acme, ticket)
    assert (reply.delivery_state, reply.delivery_attempts) == ("failed", 1)
    assert reply.delivery_next_attempt_at is None
    assert "550 5.1.1 <li.wei@example.cn>: Recipient address rejected" in reply.delivery_error
    page = page_of(agent_li, ticket)
    assert "Failed" in page and "Recipient address rejected: User unknown" in page
    assert "Send again" in page and "Retrying" not in page
    assert server.received == []


def test_the_agent_is_told_at_once_when_the_server_refuses_the_reply(
    smtp, ticket, agent_li, tenant_acme
):
    server, _ = smtp
    server.rcpt_replies = [REFUSED_RECIPIENT]
    told = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/", {"text": "We are on it."}, follow=True
    )
    assert "The reply could not be sent" in told.content.decode()
    assert "User unknown" in told.content.decode()
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "new"  # the customer never got the "pending" reply


# 4xx and network errors: retried ------------------------------------------------------------


def test_a_deferred_reply_shows_retrying_and_send_now_sends_it_once_though_the_retry_fires(
    smtp, ticket, agent_li, tenant_acme, monkeypatch
):
    server, _ = smtp
    reply = queued_reply(agent_li, ticket, monkeypatch)
    server.rcpt_replies = [GREYLISTED]
    before = timezone.now()

    scheduled = first_try_by_a_worker(tenant_acme, reply.pk, monkeypatch)

    assert scheduled["countdown"] == backoff(0) == 30
    assert scheduled["kwargs"] == {"after_attempt": 1}
    reply = reply_of(tenant_acme, ticket)
    assert (reply.delivery_state, reply.delivery_attempts) == ("queued", 1)
    assert reply.is_retrying
    assert before + timedelta(seconds=29) < reply.delivery_next_attempt_at
    assert reply.delivery_next_attempt_at < timezone.now() + timedelta(seconds=31)
    next_at = timezone.localtime(reply.delivery_next_attempt_at).strftime("%H:%M")
    page = page_of(agent_li, ticket)
    assert f"Retrying (attempt 1, next at {next_at})" in page
    assert "Last error:" in page and "Greylisted, try again in 5 minutes" in page
    assert "Send now" in page and "Send again" not in page
    assert (
        "重试中"
        in login(agent_li, language="zh-hans").get(f"/tickets/{ticket.number}/").content.decode()
    )

    told = login(agent_li).post(
        f"/tickets/{ticket.number}/messages/{reply.pk}/send-now/", follow=True
    )
    assert "Reply sent." in told.content.decode()
    assert len(server.received) == 1

    # The retry scheduled after attempt 1 fires later: the reply was tried since, so it stands down.
    assert (
        deliver_message.apply(
            args=[tenant_acme.pk, reply.pk], kwargs={"after_attempt": 1}, retries=1
        ).get()
        == "sent"
    )
    assert len(server.received) == 1
    reply = reply_of(tenant_acme, ticket)
    assert (reply.delivery_state, reply.delivery_attempts) == ("sent", 2)
    assert reply.delivery_error == "" and reply.delivery_next_attempt_at is None
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "pending"  # the status chosen with the reply, once sent


def test_an_unreachable_server_is_retried_and_fails_only_on_the_last_try(
    mailbox, ticket, agent_li, tenant_acme, monkeypatch, allow_egress
):
    closed_port = free_port()  # nothing listens
    allow_egress("127.0.0.1", closed_port)
    with tenancy.activate(tenant_acme):
        Mailbox.objects.filter(pk=mailbox.pk).update(smtp_port=closed_port)
    reply = queued_reply(agent_li, ticket, monkeypatch)

    scheduled = first_try_by_a_worker(tenant_acme, reply.pk, monkeypatch)
    assert "Could not connect to the mail server" in scheduled["error"]
    reply = reply_of(tenant_acme, ticket)
    assert reply.is_retrying and "Could not connect to the mail server" in reply.delivery_error
    assert "(reference E-" in reply.delivery_error
    assert "refused" not in reply.delivery_error.lower()  # the port is closed: not theirs to know
    assert "Retrying (attempt 1, next at" in page_of(agent_li, ticket)

    # The last retry the worker makes: the failure is final.
    result = deliver_message.apply(
        args=[tenant_acme.pk, reply.pk], kwargs={"after_attempt": 1}, retries=MAX_RETRIES
    )
    assert result.get() == "failed"
    reply = reply_of(tenant_acme, ticket)
    assert (reply.delivery_state, reply.delivery_attempts) == ("failed", 2)
    assert not reply.is_retrying
    page = page_of(agent_li, ticket)
    assert "Could not connect to the mail server" in page and "Send again" in page
    assert "Send now" not in page


def test_inline_celery_cannot_wait_so_a_4xx_fails_on_its_only_try(
    smtp, ticket, agent_li, tenant_acme
):
    server, _ = smtp
    server.rcpt_replies = [GREYLISTED]
    with tenancy.activate(tenant_acme):
        reply = services.reply_to_customer(
            acting_agent=acting(agent_li), ticket=ticket, text="On its way."
        )
        reply.refresh_from_db()
    assert (reply.delivery_state, reply.delivery_attempts) == ("failed", 1)
    assert "Greylisted" in reply.delivery_error


def test_with_a_real_worker_send_now_sends_a_retrying_reply_once(
    smtp, ticket, real_worker, agent_li, tenant_acme, monkeypatch
):
    # (The ticket is filed inline before the worker starts.)
    server, _ = smtp
    server.rcpt_replies = [GREYLISTED]
    monkeypatch.setattr(tasks, "backoff", lambda retries: 6)  # time to click "Send now"
    tries: list[int | None] = []
    real_deliver = outbound.deliver

    def counted(**kwargs):
        tries.append(kwargs.get("after_attempt"))
        return real_deliver(**kwargs)

    monkeypatch.setattr(outbound, "deliver", counted)
    client = login(agent_li)
    client.post(f"/tickets/{ticket.number}/reply/", {"text": "退款已提交。"})
    wait_for(lambda: reply_of(tenant_acme, ticket).is_retrying)
    reply = reply_of(tenant_acme, ticket)
    assert "Retrying (attempt 1, next at" in page_of(agent_li, ticket)

    client.post(f"/tickets/{ticket.number}/messages/{reply.pk}/send-now/")
    wait_for(lambda: reply_of(tenant_acme, ticket).delivery_state == "sent")
    wait_for(lambda: len(tries) == 3)  # the scheduled retry came, and stood down
    assert tries == [None, None, 1]
    assert len(server.received) == 1
    assert reply_of(tenant_acme, ticket).delivery_attempts == 2


# A refused login: the channel is paused ---------------------------------------------------


@pytest.fixture
def mailbox_with_login(mailbox: Mailbox, tenant_acme) -> Mailbox:
    with tenancy.activate(tenant_acme):
        mailbox.smtp_username = "support@acme.example"
        mailbox.smtp_password_encrypted = encrypt_secret("wrong password")
        mailbox.save()
    return mailbox


def test_a_refused_login_pauses_the_channel_and_the_owner_sees_why(
    smtp, mailbox_with_login, ticket, agent_li, owner_zhang, tenant_acme
):
    server, _ = smtp
    told = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/", {"text": "退款已提交。"}, follow=True
    )
    assert "The reply could not be sent: channel paused:" in told.content.decode()
    reply = reply_of(tenant_acme, ticket)
    assert reply.delivery_state == "failed"
    assert reply.delivery_error.startswith("channel paused: SMTP delivery failed")
    assert "535 5.7.8 Authentication credentials invalid" in reply.delivery_error
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.get(pk=mailbox_with_login.account_id)
    assert account.paused
    assert "535 5.7.8" in account.last_error and account.last_error_at is not None
    assert server.received == []

    channels = login(owner_zhang).get("/inbound/log/").content.decode()
    assert "Paused" in channels and "username or password: 535 5.7.8" in channels
    assert "Resume" in channels


def test_replies_on_a_paused_channel_fail_at_once_without_trying_the_server(
    smtp, mailbox_with_login, ticket, agent_li, tenant_acme
):
    server, _ = smtp
    with tenancy.activate(tenant_acme):
        ChannelAccount.objects.filter(pk=mailbox_with_login.account_id).update(
            paused=True, last_error="The SMTP server refused the login"
        )
    login(agent_li).post(f"/tickets/{ticket.number}/reply/", {"text": "退款已提交。"})

    reply = reply_of(tenant_acme, ticket)
    assert reply.delivery_state == "failed"
    assert reply.delivery_error == "channel paused: The SMTP server refused the login"
    assert reply.delivery_attempts == 0
    assert server.logins == 0 and server.received == []
    assert "channel paused: The SMTP server refused the login" in page_of(agent_li, ticket)


# The status chosen with a reply ------------------------------------------------------------


def _failed_reply(client, ticket: Ticket, status: str) -> None:
    client.post(f"/tickets/{ticket.number}/reply/", {"text": "已处理。", "status": status})


def test_sending_an_old_reply_again_keeps_the_status_an_agent_set_since(
    smtp, ticket, agent_li, tenant_acme
):
    server, _ = smtp
    server.rcpt_replies = [REFUSED_RECIPIENT]
    client = login(agent_li)
    _failed_reply(client, ticket, "solved")
    reply = reply_of(tenant_acme, ticket)
    assert reply.delivery_state == "failed"
    client.post(f"/tickets/{ticket.number}/status/", {"status": "on_hold"})

    told = client.post(f"/tickets/{ticket.number}/messages/{reply.pk}/resend/", follow=True)

    assert "Reply sent." in told.content.decode()
    assert len(server.received) == 1
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "on_hold"


def test_a_status_set_away_and_back_since_the_reply_still_wins(smtp, ticket, agent_li, tenant_acme):
    server, _ = smtp
    client = login(agent_li)
    client.post(f"/tickets/{ticket.number}/status/", {"status": "open"})
    server.rcpt_replies = [REFUSED_RECIPIENT]
    _failed_reply(client, ticket, "solved")
    reply = reply_of(tenant_acme, ticket)
    client.post(f"/tickets/{ticket.number}/status/", {"status": "on_hold"})
    client.post(f"/tickets/{ticket.number}/status/", {"status": "open"})

    client.post(f"/tickets/{ticket.number}/messages/{reply.pk}/resend/")

    assert reply_of(tenant_acme, ticket).delivery_state == "sent"
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "open"


def test_a_reply_sent_again_takes_its_status_when_nobody_changed_the_ticket(
    smtp, ticket, agent_li, tenant_acme
):
    server, _ = smtp
    server.rcpt_replies = [REFUSED_RECIPIENT]
    client = login(agent_li)
    _failed_reply(client, ticket, "solved")
    reply = reply_of(tenant_acme, ticket)
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "new"

    client.post(f"/tickets/{ticket.number}/messages/{reply.pk}/resend/")

    assert reply_of(tenant_acme, ticket).delivery_state == "sent"
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.status == "solved"


# Access -------------------------------------------------------------------------------------


def test_another_merchants_agent_cannot_send_a_reply_now(
    smtp, ticket, agent_li, globex_agent_li, tenant_acme, monkeypatch
):
    reply = queued_reply(agent_li, ticket, monkeypatch)
    with tenancy.activate(tenant_acme):
        Message.objects.filter(pk=reply.pk).update(
            delivery_attempts=1, delivery_next_attempt_at=timezone.now() + timedelta(minutes=2)
        )
    response = login(globex_agent_li).post(
        f"/tickets/{ticket.number}/messages/{reply.pk}/send-now/"
    )
    assert response.status_code == 404
    assert reply_of(tenant_acme, ticket).is_retrying
