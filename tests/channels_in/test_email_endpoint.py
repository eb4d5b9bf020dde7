"""POST /inbound/<tenant>/email/<account>/: the door Postfix, SES, Mailgun and SendGrid use."""

from __future__ import annotations

import base64

import pytest
from django.test import Client

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

    with mock.patch("channels_in.pipeline.find_thread", side_effect=RuntimeError("boom")):
        assert post(acme_email, customer_mail(subject="Lost?")).status_code == 202
    admin = login(admin_zhao)
    page = admin.get("/inbound/log/").content.decode()
    assert "RuntimeError: boom" in page
    assert login(agent_li).get("/inbound/log/").status_code == 404  # agents do not manage channels
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
    assert login(agent_li).post(f"/inbound/channels/{acme_email.pk}/resume/").status_code == 404
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
