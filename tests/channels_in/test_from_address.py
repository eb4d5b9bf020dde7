"""Who a reply is From: the merchant's address only where the mail will pass DMARC for it.

Through the merchant's own SMTP server; through the platform relay only for a domain the relay
DKIM-signs for (the signature is checked here offline, as a receiver would, against the key the
merchant published); otherwise From the platform in the merchant's name, with a Reply-To.
"""

from __future__ import annotations

import base64
import email
from email import policy
from email.message import EmailMessage

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels_in.models import Mailbox
from helpdesk import tenancy
from tests.channels_in import test_email_roundtrip
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_email_roundtrip import post_mail
from tests.conftest import login
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

smtp_server = test_email_roundtrip.smtp_server  # a real SMTP server (aiosmtpd) on loopback

SELECTOR = "relay2026"
PLATFORM = "Helpdesk <noreply@helpdesk.example>"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def published_record(key: rsa.RSAPrivateKey) -> bytes:
    """The TXT record the merchant publishes at <selector>._domainkey.<domain>."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def dns_publishing(domain: str, key: rsa.RSAPrivateKey):
    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        if name == f"{SELECTOR}._domainkey.{domain}.".encode():
            return published_record(key)
        return None

    return txt


@pytest.fixture
def relay(smtp_server, settings):
    """The platform relay (the operator's default connection) is the test's SMTP server."""
    _, port = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = PLATFORM
    settings.HELPDESK_RELAY_DKIM_DOMAINS = []
    settings.HELPDESK_RELAY_DKIM_SELECTOR = SELECTOR
    return settings


def reply_received(smtp_server, mailbox: Mailbox, agent, tenant) -> tuple[str, bytes]:
    """An agent answers a customer's mail; return the envelope sender and the mail received."""
    inbox, _ = smtp_server
    post_mail(mailbox.account, customer_mail(subject="退款进度"))
    with tenancy.activate(tenant):
        ticket = Ticket.objects.get()
    told = login(agent).post(
        f"/tickets/{ticket.number}/reply/", {"text": "退款已提交，请查收。"}, follow=True
    )
    assert "Reply sent." in told.content.decode()
    with tenancy.activate(tenant):
        assert Message.objects.get(direction="outbound").delivery_state == "sent"
    assert len(inbox.received) == 1
    mail_from, _rcpt, content = inbox.received[0]
    return mail_from, content


def parsed(content: bytes) -> EmailMessage:
    return email.message_from_bytes(content, policy=policy.default)


def test_through_the_merchants_own_server_a_reply_is_from_the_merchant(
    smtp_server, acme_mailbox, agent_li, tenant_acme, allow_egress
):
    _, port = smtp_server
    allow_egress("127.0.0.1", port)
    acme_mailbox.smtp_host = "127.0.0.1"
    acme_mailbox.smtp_port = port
    acme_mailbox.smtp_use_tls = False
    acme_mailbox.save()

    mail_from, content = reply_received(smtp_server, acme_mailbox, agent_li, tenant_acme)

    sent = parsed(content)
    assert mail_from == "support@acme.example"
    assert sent["From"].addresses[0].addr_spec == "support@acme.example"
    assert sent["From"].addresses[0].display_name == "Acme 家电"
    assert sent["Reply-To"] is None


def test_through_the_relay_a_reply_is_from_the_merchant_only_with_a_signature_that_verifies(
    smtp_server, relay, acme_mailbox, agent_li, tenant_acme
):
    key = rsa_key()
    relay.HELPDESK_RELAY_DKIM_DOMAINS = ["acme.example"]
    relay.HELPDESK_RELAY_DKIM_PRIVATE_KEY = private_pem(key)

    mail_from, content = reply_received(smtp_server, acme_mailbox, agent_li, tenant_acme)

    sent = parsed(content)
    assert sent["From"].addresses[0].addr_spec == "support@acme.example"
    assert sent["Reply-To"] is None
    assert "d=acme.example" in " ".join(sent["DKIM-Signature"].split())
    # A receiver checks the signature against the key the merchant published...
    assert dkim.verify(content, dnsfunc=dns_publishing("acme.example", key))
    # ...and it would not verify against another key, or once the mail was changed on the way.
    assert not dkim.verify(content, dnsfunc=dns_publishing("acme.example", rsa_key()))
    tampered = content.replace("退款已提交".encode(), "退款已拒绝".encode())
    tampered = tampered.replace(b"Subject: ", b"Subject: [changed] ")
    assert not dkim.verify(tampered, dnsfunc=dns_publishing("acme.example", key))


def test_through_the_relay_for_a_domain_it_does_not_sign_a_reply_is_from_the_platform_with_a_reply_to(
    smtp_server, relay, acme_mailbox, agent_li, tenant_acme
):
    relay.HELPDESK_RELAY_DKIM_DOMAINS = ["globex.example"]
    relay.HELPDESK_RELAY_DKIM_PRIVATE_KEY = private_pem(rsa_key())

    mail_from, content = reply_received(smtp_server, acme_mailbox, agent_li, tenant_acme)

    sent = parsed(content)
    assert mail_from == "noreply@helpdesk.example"
    assert sent["From"].addresses[0].addr_spec == "noreply@helpdesk.example"
    assert sent["From"].addresses[0].display_name == "Acme 家电 via Helpdesk"
    assert [a.addr_spec for a in sent["Reply-To"].addresses] == ["support@acme.example"]
    assert sent["DKIM-Signature"] is None
