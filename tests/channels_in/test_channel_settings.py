"""Owners and admins connect and look after mailboxes under /settings/channels/; nobody else can.

The connection test talks to real servers: pymap for IMAP and aiosmtpd for SMTP, both on
127.0.0.1 and let through the egress guard by ``allow_egress`` as an operator would.
"""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.test import Client
from django.utils import timezone

from channels_in import mailboxes
from channels_in.crypto import decrypt_secret, encrypt_secret
from channels_in.models import ChannelAccount, Mailbox
from helpdesk import tenancy
from helpdesk.errors import PermissionDenied
from helpdesk.permissions import acting_agent_for
from tests.channels_in.imap_server import ImapServer
from tests.channels_in.mails import customer_mail
from tests.conftest import login
from tickets.models import AuditEvent

SMTP_USER = "acme-smtp"
SMTP_PASSWORD = "smtp-pa55-word"
IMAP_PASSWORD_TYPED = "imap-pa55-秘密"


class SmtpInbox:
    """What the test SMTP server received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 Message accepted for delivery"


def check_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == SMTP_USER
        and auth_data.password.decode() == SMTP_PASSWORD
    )
    # handled=False: aiosmtpd answers the refusal itself (535), as a real server does.
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[SmtpInbox, int]]:
    """A real SMTP server that offers AUTH (over plain text, as a test may) and checks it."""
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=check_login,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    server = ImapServer().start()
    try:
        yield server
    finally:
        server.stop()


def mailbox_form(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "Acme support",
        "address": "support@acme.example",
        "from_name": "Acme 家电",
        "imap_host": "",
        "imap_port": 993,
        "imap_use_ssl": "on",
        "imap_username": "",
        "imap_password": "",
        "imap_folder": "INBOX",
        "smtp_host": "",
        "smtp_port": 587,
        "smtp_use_tls": "on",
        "smtp_username": "",
        "smtp_password": "",
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


def on_servers(imap: ImapServer, smtp_port: int, **overrides: object) -> dict[str, object]:
    return mailbox_form(
        imap_host="127.0.0.1",
        imap_port=imap.port,
        imap_use_ssl=None,
        imap_username=imap.username,
        imap_password=imap.password,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_use_tls=None,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        **overrides,
    )


def audit_rows(tenant, action: str) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=action))


def post_mail(account: ChannelAccount, secret: str, subject: str = "洗碗机漏水") -> int:
    response = Client().post(
        f"/inbound/{account.tenant.slug}/email/{account.pk}/",
        customer_mail(subject=subject),
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=secret,
    )
    return response.status_code


# --- who may --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_cannot_open_or_connect_mailboxes_and_nothing_is_written(
    person, request, tenant_acme
):
    client = login(request.getfixturevalue(person))
    assert client.get("/settings/channels/").status_code == 403
    assert client.get("/settings/channels/new/").status_code == 403
    response = client.post("/settings/channels/new/", mailbox_form())
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    with tenancy.activate(tenant_acme):
        assert not ChannelAccount.objects.exists()
        assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_agents_see_no_settings_link_but_a_refusal_and_admins_see_the_link(agent_li, admin_zhao):
    refused = login(agent_li).get("/settings/", HTTP_ACCEPT="text/html")
    assert refused.status_code == 403
    page = refused.content.decode()
    assert "Your role does not allow changing this merchant&#x27;s settings" in page
    assert 'href="/settings/"' not in page
    admin = login(admin_zhao)
    assert admin.get("/settings/").url == "/settings/channels/"
    assert 'href="/settings/"' in admin.get("/settings/channels/").content.decode()


@pytest.mark.django_db
def test_agents_cannot_edit_rotate_pause_or_test_an_existing_channel(
    agent_li, acme_email, tenant_acme
):
    with tenancy.activate(tenant_acme):
        Mailbox.objects.filter(pk=acme_email.mailbox.pk).update(
            smtp_password_encrypted=encrypt_secret("kept")
        )
    secret = acme_email.inbound_secret
    client = login(agent_li)
    url = f"/settings/channels/{acme_email.pk}/"
    assert client.get(url).status_code == 403
    assert client.post(url, mailbox_form(from_name="Hijacked")).status_code == 403
    assert client.post(url + "password/smtp/clear/").status_code == 403
    for action in ("rotate-secret", "pause", "resume", "test", "test-mail"):
        assert client.post(f"{url}{action}/").status_code == 403
    acme_email.refresh_from_db()
    assert acme_email.inbound_secret == secret
    assert not acme_email.paused
    with tenancy.activate(tenant_acme):
        mailbox = Mailbox.objects.get(pk=acme_email.mailbox.pk)
        assert mailbox.from_name == "Acme 家电"
        assert decrypt_secret(mailbox.smtp_password_encrypted) == "kept"
        assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_mailbox_services_refuse_a_supervisor_before_writing(supervisor_wang, tenant_acme):
    with tenancy.activate(tenant_acme):
        acting = acting_agent_for(supervisor_wang, tenant_acme)
        with pytest.raises(PermissionDenied):
            mailboxes.create_mailbox(
                acting_agent=acting,
                mailbox_settings=mailboxes.MailboxSettings(
                    name="Sneaky", address="sneaky@acme.example"
                ),
            )
        with pytest.raises(PermissionDenied):
            mailboxes.set_attachment_limit(acting_agent=acting, megabytes=1)
        assert not ChannelAccount.objects.exists()
        assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_admin_removes_a_saved_password(admin_zhao, acme_mailbox, tenant_acme):
    with tenancy.activate(tenant_acme):
        acme_mailbox.imap_password_encrypted = encrypt_secret("old")
        acme_mailbox.save()
    client = login(admin_zhao)
    url = f"/settings/channels/{acme_mailbox.account_id}/"
    assert "Remove the saved IMAP password" in client.get(url).content.decode()
    client.post(url + "password/imap/clear/")
    with tenancy.activate(tenant_acme):
        acme_mailbox.refresh_from_db()
    assert acme_mailbox.imap_password_encrypted == ""
    assert "Remove the saved IMAP password" not in client.get(url).content.decode()
    [cleared] = audit_rows(tenant_acme, "mailbox.password_changed")
    assert cleared.changes == {"details": {"server": "imap", "cleared": True}}


@pytest.mark.django_db
def test_another_merchants_channel_ids_answer_404_and_stay_untouched(
    admin_zhao, tenant_globex, acme_email
):
    with tenancy.activate(tenant_globex):
        globex = ChannelAccount.objects.create(kind="email", name="Globex support")
        Mailbox.objects.create(account=globex, address="help@globex.example")
    secret = globex.inbound_secret
    client = login(admin_zhao)
    assert client.get(f"/settings/channels/{globex.pk}/").status_code == 404
    for action in ("rotate-secret", "pause", "resume", "test", "test-mail"):
        assert client.post(f"/settings/channels/{globex.pk}/{action}/").status_code == 404
    assert client.post(f"/settings/channels/{globex.pk}/", mailbox_form()).status_code == 404
    with tenancy.activate(tenant_globex):
        globex.refresh_from_db()
        assert globex.inbound_secret == secret and not globex.paused
        assert globex.name == "Globex support"


# --- connecting and editing -----------------------------------------------------------------


@pytest.mark.django_db
def test_owner_connects_a_mailbox_and_its_passwords_are_never_shown_back(
    owner_chen, tenant_acme, imap_server, smtp_server, allow_egress
):
    _inbox, smtp_port = smtp_server
    allow_egress("127.0.0.1", imap_server.port)
    allow_egress("127.0.0.1", smtp_port)
    client = login(owner_chen)
    response = client.post("/settings/channels/new/", on_servers(imap_server, smtp_port))
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        mailbox = Mailbox.objects.select_related("account").get()
    assert response.url == f"/settings/channels/{mailbox.account_id}/"
    assert mailbox.address == "support@acme.example" and mailbox.from_name == "Acme 家电"
    assert decrypt_secret(mailbox.imap_password_encrypted) == imap_server.password
    assert decrypt_secret(mailbox.smtp_password_encrypted) == SMTP_PASSWORD

    page = client.get(response.url).content.decode()
    assert "support@acme.example" in page
    assert SMTP_PASSWORD not in page and mailbox.smtp_password_encrypted not in page
    assert 'name="smtp_password"' in page and "A password is saved; it is never shown" in page
    [created] = audit_rows(tenant_acme, "channel.created")
    assert created.actor == owner_chen
    logged = json.dumps(created.changes, ensure_ascii=False)
    assert SMTP_PASSWORD not in logged and "password" not in logged


@pytest.mark.django_db
def test_an_empty_password_field_keeps_the_saved_password_and_a_new_one_replaces_it(
    admin_zhao, acme_mailbox, tenant_acme
):
    with tenancy.activate(tenant_acme):
        acme_mailbox.smtp_password_encrypted = encrypt_secret("old-secret")
        acme_mailbox.save()
    client = login(admin_zhao)
    url = f"/settings/channels/{acme_mailbox.account_id}/"
    assert client.post(url, mailbox_form(from_name="Acme 售后")).status_code == 302
    with tenancy.activate(tenant_acme):
        acme_mailbox.refresh_from_db()
    assert acme_mailbox.from_name == "Acme 售后"
    assert decrypt_secret(acme_mailbox.smtp_password_encrypted) == "old-secret"
    assert audit_rows(tenant_acme, "mailbox.password_changed") == []
    [updated] = audit_rows(tenant_acme, "channel.updated")
    assert updated.changes == {"from_name": ["Acme 家电", "Acme 售后"]}

    client.post(url, mailbox_form(from_name="Acme 售后", smtp_password=IMAP_PASSWORD_TYPED))
    with tenancy.activate(tenant_acme):
        acme_mailbox.refresh_from_db()
    assert decrypt_secret(acme_mailbox.smtp_password_encrypted) == IMAP_PASSWORD_TYPED
    [changed] = audit_rows(tenant_acme, "mailbox.password_changed")
    assert changed.changes == {"details": {"server": "smtp", "cleared": False}}
    assert IMAP_PASSWORD_TYPED not in client.get(url).content.decode()


@pytest.mark.django_db
def test_a_mail_server_inside_the_platforms_network_is_refused_when_saved(owner_chen, tenant_acme):
    response = login(owner_chen).post(
        "/settings/channels/new/", mailbox_form(imap_host="10.0.0.7", imap_username="x")
    )
    assert response.status_code == 400
    assert "is not a public internet address" in response.content.decode()
    with tenancy.activate(tenant_acme):
        assert not ChannelAccount.objects.exists()


@pytest.mark.django_db
def test_owner_sets_the_attachment_size_limit_and_an_agent_cannot(
    owner_chen, agent_li, tenant_acme
):
    assert (
        login(agent_li).post("/settings/channels/attachment-limit/", {"megabytes": 1}).status_code
        == 403
    )
    tenant_acme.refresh_from_db()
    assert tenant_acme.max_attachment_bytes == 20 * 1024 * 1024

    client = login(owner_chen)
    client.post("/settings/channels/attachment-limit/", {"megabytes": 5})
    tenant_acme.refresh_from_db()
    assert tenant_acme.max_attachment_bytes == 5 * 1024 * 1024
    assert 'value="5"' in client.get("/settings/channels/").content.decode()
    [changed] = audit_rows(tenant_acme, "merchant.attachment_limit_changed")
    assert changed.changes == {"max_attachment_bytes": [20 * 1024 * 1024, 5 * 1024 * 1024]}


@pytest.mark.django_db
def test_admin_pauses_a_channel_and_resumes_it(admin_zhao, acme_email, tenant_acme):
    client = login(admin_zhao)
    url = f"/settings/channels/{acme_email.pk}/"
    client.post(url + "pause/")
    acme_email.refresh_from_db()
    assert acme_email.paused
    assert "Paused by zhao.acme" in client.get(url).content.decode()
    client.post(url + "resume/")
    acme_email.refresh_from_db()
    assert not acme_email.paused
    assert [e.action for e in audit_rows(tenant_acme, "channel.paused")] == ["channel.paused"]
    assert len(audit_rows(tenant_acme, "channel.resumed")) == 1


@pytest.mark.django_db
def test_the_inbound_page_links_each_mailbox_to_its_settings(admin_zhao, acme_email):
    page = login(admin_zhao).get("/inbound/log/").content.decode()
    assert f'href="/settings/channels/{acme_email.pk}/"' in page


# --- the inbound secret ---------------------------------------------------------------------


@pytest.mark.django_db
def test_after_rotation_the_old_secret_works_until_the_grace_period_ends_then_403(
    admin_zhao, acme_email, tenant_acme, monkeypatch
):
    old_secret = acme_email.inbound_secret
    client = login(admin_zhao)
    response = client.post(f"/settings/channels/{acme_email.pk}/rotate-secret/", follow=True)
    acme_email.refresh_from_db()
    new_secret = acme_email.inbound_secret
    assert new_secret != old_secret
    page = response.content.decode()
    assert new_secret in page and old_secret not in page
    assert "The old one works until" in page
    [rotated] = audit_rows(tenant_acme, "channel.secret_rotated")
    assert old_secret not in json.dumps(rotated.changes) and new_secret not in json.dumps(
        rotated.changes
    )

    assert post_mail(acme_email, old_secret, "旧密钥仍可用") == 202
    assert post_mail(acme_email, new_secret, "新密钥") == 202
    assert post_mail(acme_email, "guess", "猜的") == 403

    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=23))
    assert post_mail(acme_email, old_secret, "23 小时后") == 202
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=25))
    assert post_mail(acme_email, old_secret, "25 小时后") == 403
    assert post_mail(acme_email, new_secret, "新密钥 25 小时后") == 202


@pytest.mark.django_db
def test_an_empty_secret_is_refused_even_when_no_previous_secret_exists(acme_email):
    assert post_mail(acme_email, "") == 403


# --- test connection and test mail ----------------------------------------------------------


@pytest.fixture
def mailbox_on_servers(acme_mailbox, imap_server, smtp_server, tenant_acme) -> Mailbox:
    _inbox, smtp_port = smtp_server
    with tenancy.activate(tenant_acme):
        acme_mailbox.imap_host = "127.0.0.1"
        acme_mailbox.imap_port = imap_server.port
        acme_mailbox.imap_use_ssl = False
        acme_mailbox.imap_username = imap_server.username
        acme_mailbox.imap_password_encrypted = encrypt_secret(imap_server.password)
        acme_mailbox.smtp_host = "127.0.0.1"
        acme_mailbox.smtp_port = smtp_port
        acme_mailbox.smtp_use_tls = False
        acme_mailbox.smtp_username = SMTP_USER
        acme_mailbox.smtp_password_encrypted = encrypt_secret(SMTP_PASSWORD)
        acme_mailbox.save()
    return acme_mailbox


@pytest.mark.django_db
def test_test_connection_signs_in_to_the_real_imap_and_smtp_servers(
    admin_zhao, mailbox_on_servers, imap_server, smtp_server, allow_egress, tenant_acme
):
    _inbox, smtp_port = smtp_server
    allow_egress("127.0.0.1", imap_server.port)
    allow_egress("127.0.0.1", smtp_port)
    imap_server.append("INBOX", customer_mail())
    response = login(admin_zhao).post(f"/settings/channels/{mailbox_on_servers.account_id}/test/")
    page = response.content.decode()
    assert response.status_code == 200
    assert (
        f"IMAP</strong> works: Signed in to 127.0.0.1:{imap_server.port} as support; "
        "INBOX holds 1 messages." in page
    )
    assert (
        f"SMTP</strong> works: Connected to 127.0.0.1:{smtp_port} and signed in as acme-smtp."
        in page
    )
    [tested] = audit_rows(tenant_acme, "channel.connection_tested")
    assert tested.changes == {"details": {"imap": True, "smtp": True}}


@pytest.mark.django_db
def test_test_connection_says_which_password_the_servers_refused(
    admin_zhao, mailbox_on_servers, imap_server, smtp_server, allow_egress, tenant_acme
):
    _inbox, smtp_port = smtp_server
    allow_egress("127.0.0.1", imap_server.port)
    allow_egress("127.0.0.1", smtp_port)
    with tenancy.activate(tenant_acme):
        mailbox_on_servers.imap_password_encrypted = encrypt_secret("wrong")
        mailbox_on_servers.smtp_password_encrypted = encrypt_secret("wrong")
        mailbox_on_servers.save()
    page = (
        login(admin_zhao)
        .post(f"/settings/channels/{mailbox_on_servers.account_id}/test/")
        .content.decode()
    )
    assert (
        f"IMAP</strong> does not work: 127.0.0.1:{imap_server.port} refused the username or "
        "password: [AUTHENTICATIONFAILED] Invalid authentication credentials." in page
    )
    assert (
        f"SMTP</strong> does not work: 127.0.0.1:{smtp_port} refused the username or password: "
        "535" in page
    )


@pytest.mark.django_db
def test_test_connection_to_servers_the_egress_guard_does_not_allow_connects_nowhere(
    admin_zhao, mailbox_on_servers, smtp_server, allow_egress
):
    inbox, _port = smtp_server
    allow_egress("127.0.0.1", 1)  # an allow-list that names neither server
    page = (
        login(admin_zhao)
        .post(f"/settings/channels/{mailbox_on_servers.account_id}/test/")
        .content.decode()
    )
    assert page.count("is not a public internet address") == 2
    assert "Signed in" not in page and "Connected to" not in page


@pytest.mark.django_db
def test_send_a_test_mail_reaches_the_mailbox_through_its_own_smtp_server(
    admin_zhao, mailbox_on_servers, smtp_server, allow_egress, tenant_acme
):
    inbox, smtp_port = smtp_server
    allow_egress("127.0.0.1", smtp_port)
    response = login(admin_zhao).post(
        f"/settings/channels/{mailbox_on_servers.account_id}/test-mail/", follow=True
    )
    assert "A test mail is on its way to support@acme.example" in response.content.decode()
    [(mail_from, recipients, content)] = inbox.received
    sent = email.message_from_bytes(content, policy=policy.default)
    assert recipients == ["support@acme.example"]
    assert sent["From"].addresses[0].addr_spec == "support@acme.example"
    # If it comes back in, the pipeline drops it as automated rather than opening a ticket.
    assert sent["Auto-Submitted"] == "auto-generated"
    assert len(audit_rows(tenant_acme, "channel.test_mail_sent")) == 1


@pytest.mark.django_db
def test_a_test_mail_the_server_cannot_take_is_reported_and_not_audited_as_sent(
    admin_zhao, mailbox_on_servers, allow_egress, tenant_acme
):
    port = free_port()  # nothing listens here
    allow_egress("127.0.0.1", port)
    with tenancy.activate(tenant_acme):
        mailbox_on_servers.smtp_port = port
        mailbox_on_servers.save()
    response = login(admin_zhao).post(
        f"/settings/channels/{mailbox_on_servers.account_id}/test-mail/"
    )
    assert response.status_code == 502
    assert "Could not connect to the mail server" in response.json()["message"]
    assert audit_rows(tenant_acme, "channel.test_mail_sent") == []
