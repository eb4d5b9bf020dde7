"""POST /inbound/<tenant>/email/<account>/: the door Postfix, SES, Mailgun and SendGrid use."""

from __future__ import annotations

import base64

import pytest
from django.test import Client

from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.conftest import login
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def url(account) -> str:
    return f"/inbound/{account.tenant.slug}/email/{account.pk}/"


def post(account, body: bytes, secret: str | None = None, **extra) -> object:
    headers = {"HTTP_X_HELPDESK_SECRET": account.inbound_secret if secret is None else secret}
    headers.update(extra)
    return Client().post(url(account), body, content_type="message/rfc822", **headers)


def test_raw_mail_is_accepted_with_202_and_becomes_a_ticket(acme_email):
    response = post(acme_email, customer_mail())
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    with tenancy.activate(acme_email.tenant):
        assert Ticket.objects.get().subject == "吸油烟机噪音很大"


def test_posting_the_same_mail_three_times_yields_one_message(acme_email):
    payload = customer_mail(message_id="<thrice@example.cn>")
    statuses = [post(acme_email, payload).json()["status"] for _ in range(3)]
    assert statuses == ["accepted", "duplicate", "duplicate"]
    with tenancy.activate(acme_email.tenant):
        assert Message.objects.count() == 1
        assert RawInbound.objects.count() == 1


def test_a_bad_secret_gets_403_and_stores_nothing(acme_email):
    response = post(acme_email, customer_mail(), secret="guess")
    assert response.status_code == 403
    assert response.json()["code"] == "bad_secret"
    assert post(acme_email, customer_mail(), secret="").status_code == 403
    with tenancy.activate(acme_email.tenant):
        assert RawInbound.objects.count() == 0


def test_basic_auth_and_bearer_carry_the_secret(acme_email):
    basic = base64.b64encode(f"api:{acme_email.inbound_secret}".encode()).decode()
    assert (
        post(
            acme_email, customer_mail(), secret="", HTTP_AUTHORIZATION=f"Basic {basic}"
        ).status_code
        == 202
    )
    bearer = f"Bearer {acme_email.inbound_secret}"
    assert (
        post(acme_email, customer_mail(), secret="", HTTP_AUTHORIZATION=bearer).status_code == 202
    )


def test_an_empty_body_gets_400_with_a_reason(acme_email):
    response = post(acme_email, b"")
    assert response.status_code == 400
    assert "empty" in response.json()["message"]


@pytest.mark.parametrize(
    "body", [b'{"event": "delivered"}', b"hello world, not a mail", b"\x00\xff\xfe binary"]
)
def test_a_non_mail_body_gets_400_with_a_reason(acme_email, body):
    response = post(acme_email, body)
    assert response.status_code == 400
    assert response.json()["code"] == "not_mail"
    assert "not an email message" in response.json()["message"]


def test_another_merchants_channel_is_404_even_with_its_secret(acme_email, tenant_globex):
    response = Client().post(
        f"/inbound/globex/email/{acme_email.pk}/",
        customer_mail(),
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 404


def test_mailgun_style_multipart_raw_mime_is_taken_as_bytes(acme_email):
    from django.core.files.uploadedfile import SimpleUploadedFile

    gbk = customer_mail(body="退款什么时候到账？", charset="gb18030")
    response = Client().post(
        url(acme_email),
        {"body-mime": SimpleUploadedFile("message.eml", gbk, content_type="message/rfc822")},
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202
    with tenancy.activate(acme_email.tenant):
        assert Message.objects.get().body_text == "退款什么时候到账？"


def test_get_is_not_allowed(acme_email):
    assert Client().get(url(acme_email)).status_code == 405


def test_admins_see_failed_messages_and_retry_them(acme_email, admin_zhao, agent_li):
    from unittest import mock

    with mock.patch("tickets.services.find_thread", side_effect=RuntimeError("boom")):
        assert post(acme_email, customer_mail(subject="Lost?")).status_code == 202
    admin = login(admin_zhao)
    page = admin.get("/inbound/log/").content.decode()
    assert "RuntimeError: boom" in page
    # Agents do not manage channels: refused with the reason, as every role check is.
    assert login(agent_li).get("/inbound/log/").status_code == 403
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.get()
    response = admin.post(f"/inbound/log/{raw.pk}/retry/", follow=True)
    assert "Processed" in response.content.decode()
    with tenancy.activate(acme_email.tenant):
        assert Ticket.objects.get().subject == "Lost?"


def test_admin_stores_mailbox_passwords_encrypted_and_never_shows_them(acme_email, tenant_acme):
    from django.contrib.auth import get_user_model

    from channels_in.crypto import decrypt_secret
    from channels_in.models import Mailbox

    operator = get_user_model().objects.create_superuser(
        "operator", "op@example.com", "pw-12345678"
    )
    client = login(operator)
    client.post("/switch-tenant/", {"tenant": "acme"})
    with tenancy.activate(tenant_acme):
        mailbox = Mailbox.objects.get()
    page = client.get(f"/admin/channels_in/channelaccount/{acme_email.pk}/change/")
    assert page.status_code == 200
    form = {
        "kind": "email",
        "name": "Acme support",
        "is_active": "on",
        "inbound_secret": acme_email.inbound_secret,
        "mailbox-TOTAL_FORMS": "1",
        "mailbox-INITIAL_FORMS": "1",
        "mailbox-MIN_NUM_FORMS": "0",
        "mailbox-MAX_NUM_FORMS": "1",
        "mailbox-0-id": str(mailbox.pk),
        "mailbox-0-account": str(acme_email.pk),
        "mailbox-0-address": "support@acme.example",
        "mailbox-0-from_name": "Acme",
        "mailbox-0-imap_host": "imap.acme.example",
        "mailbox-0-imap_port": "993",
        "mailbox-0-imap_use_ssl": "on",
        "mailbox-0-imap_username": "support",
        "mailbox-0-imap_password": "s3cret-imap",
        "mailbox-0-imap_folder": "INBOX",
        "mailbox-0-smtp_host": "",
        "mailbox-0-smtp_port": "587",
        "mailbox-0-smtp_username": "",
        "mailbox-0-smtp_password": "",
    }
    response = client.post(f"/admin/channels_in/channelaccount/{acme_email.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenancy.activate(tenant_acme):
        mailbox.refresh_from_db()
    assert mailbox.imap_password_encrypted and "s3cret-imap" not in mailbox.imap_password_encrypted
    assert decrypt_secret(mailbox.imap_password_encrypted) == "s3cret-imap"
    again = client.get(
        f"/admin/channels_in/channelaccount/{acme_email.pk}/change/"
    ).content.decode()
    assert "s3cret-imap" not in again and mailbox.imap_password_encrypted not in again


def test_a_garbled_content_length_or_form_is_a_400_not_a_crash(acme_email):
    client = Client()
    response = client.post(
        url(acme_email),
        b"--x\r\nContent-Disposition: form-data; name=message\r\n\r\nunterminated",
        content_type="multipart/form-data; boundary=",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 400
    assert response.json()["code"] in {"bad_form", "not_mail"}
    response = client.generic(
        "POST",
        url(acme_email),
        customer_mail(),
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
        CONTENT_LENGTH="twelve",
    )
    assert response.status_code == 400


def test_a_message_id_with_a_nul_byte_is_accepted_once(acme_email):
    payload = customer_mail(message_id="<abc\x00def@example.cn>")
    assert post(acme_email, payload).json()["status"] == "accepted"
    assert post(acme_email, payload).json()["status"] == "duplicate"
    with tenancy.activate(acme_email.tenant):
        assert Message.objects.count() == 1


def test_admins_see_a_paused_channel_with_its_error_and_resume_it(acme_email, admin_zhao, agent_li):
    from channels_in.models import ChannelAccount

    with tenancy.activate(acme_email.tenant):
        ChannelAccount.objects.filter(pk=acme_email.pk).update(
            paused=True, last_error="The IMAP server refused the username or password"
        )
    admin = login(admin_zhao)
    page = admin.get("/tickets/").content.decode()
    assert 'class="badge alert"' in page  # the navigation tells admins something needs them
    log = admin.get("/inbound/log/").content.decode()
    assert "refused the username or password" in log and "Paused" in log
    assert login(agent_li).post(f"/inbound/channels/{acme_email.pk}/resume/").status_code == 403
    response = admin.post(f"/inbound/channels/{acme_email.pk}/resume/", follow=True)
    assert "running again" in response.content.decode()
    with tenancy.activate(acme_email.tenant):
        acme_email.refresh_from_db()
        assert (acme_email.paused, acme_email.last_error) == (False, "")
        from tickets.models import AuditEvent

        assert AuditEvent.objects.filter(action="channel.resumed", actor=admin_zhao).exists()


def test_admins_find_the_forwarding_address_and_secret_of_their_email_channel(
    acme_email, admin_zhao
):
    page = login(admin_zhao).get("/inbound/log/").content.decode()
    assert f"http://testserver/inbound/acme/email/{acme_email.pk}/" in page
    assert acme_email.inbound_secret in page


def test_a_retry_that_fails_again_says_so_and_long_logs_have_pages(acme_email, admin_zhao):
    from channels_in import pipeline

    with tenancy.activate(acme_email.tenant):
        for index in range(51):
            pipeline.store_undeliverable(
                account=acme_email,
                payload=f"junk {index}".encode(),
                source="imap",
                error="not mail",
            )
        raw = RawInbound.objects.order_by("pk").first()
    admin = login(admin_zhao)
    listing = admin.get("/inbound/log/").content.decode()
    assert "?page=2&state=failed" in listing
    response = admin.post(f"/inbound/log/{raw.pk}/retry/", follow=True).content.decode()
    assert "It failed again" in response


def test_chinese_raw_mail_reads_as_chinese_on_its_detail_page(acme_email, admin_zhao):
    head = (
        "From: Li <li@example.cn>\r\nTo: support@acme.example\r\nSubject: refund\r\n"
        "Message-ID: <gbk-raw@example.cn>\r\nContent-Type: text/plain; charset=gb2312\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    post(acme_email, head.encode() + "退款什么时候到账".encode("gbk"))
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.get()
    page = login(admin_zhao).get(f"/inbound/log/{raw.pk}/").content.decode()
    assert "退款什么时候到账" in page


def test_raw_mail_labelled_as_a_form_is_taken_as_the_mail(acme_email):
    # What `curl --data-binary @mail.eml` sends when no Content-Type is given.
    response = Client().post(
        url(acme_email),
        customer_mail(subject="标成表单的邮件"),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202, response.content
    with tenancy.activate(acme_email.tenant):
        assert Ticket.objects.get().subject == "标成表单的邮件"


def test_raw_mail_labelled_multipart_without_a_boundary_is_taken_as_the_mail(acme_email):
    response = Client().post(
        url(acme_email),
        customer_mail(subject="multipart label"),
        content_type="multipart/form-data",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202, response.content
    with tenancy.activate(acme_email.tenant):
        assert Ticket.objects.get().subject == "multipart label"


def test_a_urlencoded_form_with_a_raw_mime_field_keeps_8bit_bytes(acme_email):
    from urllib.parse import quote_from_bytes

    gbk = customer_mail(body="发票抬头写错了", charset="gb18030")
    response = Client().post(
        url(acme_email),
        b"recipient=support%40acme.example&body-mime=" + quote_from_bytes(gbk).encode(),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_HELPDESK_SECRET=acme_email.inbound_secret,
    )
    assert response.status_code == 202
    with tenancy.activate(acme_email.tenant):
        assert bytes(RawInbound.objects.get().payload) == gbk
        assert Message.objects.get().body_text == "发票抬头写错了"


def test_a_redelivered_mail_that_was_never_queued_is_queued_now(acme_email):
    payload = customer_mail(message_id="<never-queued@example.cn>", subject="队列挂了")
    with tenancy.activate(acme_email.tenant):
        # Stored while the broker was down: nothing was handed to a worker.
        from channels_in import pipeline

        raw, _ = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(payload), source="webhook"
        )
        RawInbound.objects.filter(pk=raw.pk).update(queued_at=None)
    response = post(acme_email, payload)
    assert response.status_code == 202
    assert response.json()["status"] == "duplicate"
    with tenancy.activate(acme_email.tenant):
        assert RawInbound.objects.get().state == "processed"
        assert Ticket.objects.get().subject == "队列挂了"


def test_the_endpoint_answers_202_when_the_broker_is_down(acme_email):
    from unittest import mock

    from kombu.exceptions import OperationalError

    from channels_in.tasks import process_raw_inbound

    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with mock.patch.object(process_raw_inbound, "delay", side_effect=refused):
        response = post(acme_email, customer_mail(subject="broker down"))
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.get()
        assert raw.state == "received" and raw.queued_at is None  # the sweep will queue it


def test_the_inbound_page_shows_sender_subject_and_channel_not_the_message_id(
    acme_email, admin_zhao
):
    from unittest import mock

    with mock.patch("tickets.services.find_thread", side_effect=RuntimeError("boom")):
        post(
            acme_email,
            customer_mail(
                sender="王芳 <wang.fang@example.cn>",
                subject="发票开错了",
                message_id="<hidden-id-123@example.cn>",
            ),
        )
    page = login(admin_zhao).get("/inbound/log/").content.decode()
    assert "wang.fang@example.cn" in page
    assert "发票开错了" in page
    assert "Acme support" in page
    assert "hidden-id-123" not in page


def test_admins_discard_a_failed_message_and_it_is_audited(acme_email, admin_zhao):
    with tenancy.activate(acme_email.tenant):
        from channels_in import pipeline

        raw = pipeline.store_undeliverable(
            account=acme_email, payload=b"%PDF-1.4 not mail", source="imap", error="not mail"
        )
    admin = login(admin_zhao)
    page = admin.post(f"/inbound/log/{raw.pk}/discard/", follow=True).content.decode()
    assert "The message was discarded." in page
    assert "Nothing here." in admin.get("/inbound/log/").content.decode()  # failed list empty
    with tenancy.activate(acme_email.tenant):
        from tickets.models import AuditEvent

        raw.refresh_from_db()
        assert raw.state == "discarded"
        assert bytes(raw.payload) == b"%PDF-1.4 not mail"  # the bytes are kept
        event = AuditEvent.objects.get(action="inbound.discarded")
        assert event.actor == admin_zhao and event.changes == {"state": ["failed", "discarded"]}
    # Discarding twice is refused with a reason, not a crash.
    again = admin.post(f"/inbound/log/{raw.pk}/discard/", HTTP_ACCEPT="application/json")
    assert again.status_code == 400


def test_admins_file_a_mail_without_sender_as_a_ticket_by_hand(acme_email, admin_zhao, agent_li):
    no_sender = (
        b"To: support@acme.example\r\nSubject: =?utf-8?b?5rKh5pyJ5Y+R5Lu25Lq6?=\r\n"
        b"Message-ID: <nobody@example.cn>\r\n\r\nWho am I?\r\n"
    )
    assert post(acme_email, no_sender).status_code == 202
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.get()
        assert raw.state == "failed" and "no sender address" in raw.error
        assert Ticket.objects.count() == 0  # never an unanswerable ticket on its own
    assert login(agent_li).post(f"/inbound/log/{raw.pk}/file/").status_code == 403
    page = login(admin_zhao).post(f"/inbound/log/{raw.pk}/file/", follow=True).content.decode()
    assert "Filed on ticket #1" in page
    with tenancy.activate(acme_email.tenant):
        from tickets.models import AuditEvent

        ticket = Ticket.objects.get()
        assert ticket.subject == "没有发件人"
        assert ticket.messages.get(direction="inbound").body_text == "Who am I?"
        assert AuditEvent.objects.filter(action="inbound.filed_by_hand", actor=admin_zhao).exists()
    ticket_page = login(agent_li).get("/tickets/1/").content.decode()
    assert "no sender address" in ticket_page  # the agent sees why nobody can be answered
    assert "has no email address to reply to" in ticket_page
    assert "Send reply" not in ticket_page


def test_admins_file_an_ignored_automated_mail_when_it_was_a_customer_after_all(
    acme_email, admin_zhao
):
    auto = customer_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"})
    post(acme_email, auto)
    with tenancy.activate(acme_email.tenant):
        raw = RawInbound.objects.get()
        assert raw.state == "ignored"
    login(admin_zhao).post(f"/inbound/log/{raw.pk}/file/")
    with tenancy.activate(acme_email.tenant):
        raw.refresh_from_db()
        assert raw.state == "processed"
        assert Ticket.objects.get().subject == "Out of office"


def test_the_inbound_page_names_a_mail_behind_a_forwarding_banner(acme_email, admin_zhao):
    banner = b"----- Original message -----\r\n" + customer_mail(
        sender="Hans <hans@example.de>", subject="Weitergeleitet"
    )
    with tenancy.activate(acme_email.tenant):
        from channels_in import pipeline

        raw, _ = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(banner), source="import"
        )
    assert (raw.sender, raw.subject) == ("hans@example.de", "Weitergeleitet")
