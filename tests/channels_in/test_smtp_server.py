"""The inbound SMTP service, run for real on a loopback port and spoken to with smtplib, as a
merchant's mail host forwarding their support mail would."""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import OperationalError

from channels_in import forwarding
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.channels_in.polling import wait_for
from tests.channels_in.smtp_service import (
    address_of,
    email_channel,
    free_port,
    running_smtp_service,
    send,
)
from tests.conftest import acting
from tests.corpus import CORPUS
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

# A real GB2312 mail (Foxmail, Chinese subject and body), as a Chinese customer's mail arrives.
GB2312_MAIL = (CORPUS / "zammad" / "mail031.box").read_bytes()
GB2312_SUBJECT = "內應力產生与注塑工艺条件之间的关系；"


@pytest.fixture
def smtp_port() -> Iterator[int]:
    with running_smtp_service() as port:
        yield port


@pytest.fixture
def acme_channel(tenant_acme):
    return email_channel(tenant_acme, name="Acme support", address="support@acme.example")


@pytest.fixture
def globex_channel(tenant_globex):
    return email_channel(tenant_globex, name="Globex help", address="help@globex.example")


def tickets_of(tenant) -> list[Ticket]:
    with tenancy.activate(tenant):
        return list(Ticket.objects.select_related("customer").order_by("pk"))


def raws_of(tenant) -> list[RawInbound]:
    with tenancy.activate(tenant):
        return list(RawInbound.objects.order_by("pk"))


def test_forwarded_mail_becomes_a_ticket_of_the_merchant_whose_address_it_was_sent_to(
    smtp_port, acme_channel, globex_channel, tenant_acme, tenant_globex
):
    refused = send(smtp_port, [address_of(acme_channel)], GB2312_MAIL)
    assert refused == {}
    english = customer_mail(
        sender="Dana <dana@example.com>",
        to="help@globex.example",
        subject="Tent pole snapped",
        body="The pole snapped on the first night.",
    )
    send(smtp_port, [address_of(globex_channel)], english)

    [acme_ticket] = tickets_of(tenant_acme)
    assert acme_ticket.subject == GB2312_SUBJECT
    with tenancy.activate(tenant_acme):
        message = acme_ticket.messages.get()
        assert "注塑" in message.body_text
        assert message.metadata["from"] == "zhengkang@ha.chinamobile.com"
        [raw] = RawInbound.objects.all()
        assert raw.source == "smtp" and raw.state == "processed"
        assert raw.envelope["headers"]["smtp-mail-from"] == "relay@example.com"
        assert raw.envelope["headers"]["smtp-rcpt-to"] == address_of(acme_channel)
    [globex_ticket] = tickets_of(tenant_globex)
    assert globex_ticket.subject == "Tent pole snapped"
    assert [raw.subject for raw in raws_of(tenant_globex)] == ["Tent pole snapped"]


def test_one_message_to_several_merchants_is_stored_once_per_channel(
    smtp_port, acme_channel, globex_channel, tenant_acme, tenant_globex, admin_zhao
):
    old_address = address_of(acme_channel)
    with tenancy.activate(tenant_acme):
        forwarding.new_forwarding_address(acting_agent=acting(admin_zhao), account=acme_channel)
    new_address = address_of(acme_channel)
    assert new_address != old_address

    mail = customer_mail(subject="两家店都买了", to="support@acme.example, help@globex.example")
    assert send(smtp_port, [old_address, new_address, address_of(globex_channel)], mail) == {}

    [acme_raw] = raws_of(tenant_acme)
    assert acme_raw.envelope["headers"]["smtp-rcpt-to"] == f"{old_address}, {new_address}"
    assert len(raws_of(tenant_globex)) == 1
    assert [t.subject for t in tickets_of(tenant_acme)] == ["两家店都买了"]
    assert [t.subject for t in tickets_of(tenant_globex)] == ["两家店都买了"]


def test_an_unknown_address_or_another_domain_is_refused_550_with_the_reason(
    smtp_port, acme_channel, globex_channel, tenant_acme, tenant_globex
):
    acme_token = address_of(acme_channel).split("+")[1].split("@")[0]
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.ehlo("mx.example.com")
        client.mail("relay@example.com")
        code, reason = client.rcpt("acme+0123456789abcdef0123@inbound.localhost")
        assert code == 550 and b"no such forwarding address" in reason
        # Globex's slug with Acme's token names no channel: a token works only for its merchant.
        code, _ = client.rcpt(f"globex+{acme_token}@inbound.localhost")
        assert code == 550
        code, reason = client.rcpt("support@acme.example")
        assert code == 550 and b"relaying denied" in reason
        code, _ = client.rcpt(address_of(acme_channel))
        assert code == 250
    assert raws_of(tenant_acme) == [] and raws_of(tenant_globex) == []


def test_a_message_larger_than_the_limit_is_refused_552_and_nothing_is_stored(
    settings, acme_channel, tenant_acme
):
    settings.HELPDESK_INBOUND_MAX_BYTES = 20_000
    big = customer_mail(subject="照片", body="很大的附件。\n" + "x" * 76 * 400)
    assert len(big) > 20_000
    with running_smtp_service() as port:
        # A sender that declares the size hears it at MAIL FROM (smtplib does, from EHLO's SIZE) ...
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            send(port, [address_of(acme_channel)], big)
        assert declared.value.smtp_code == 552
        # ... one that does not, once the data has gone past it.
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.example.com")
            client.mail("relay@example.com")
            assert client.rcpt(address_of(acme_channel))[0] == 250
            code, _ = client.data(big)
            assert code == 552
        assert send(port, [address_of(acme_channel)], customer_mail(subject="小的")) == {}
    assert [raw.subject for raw in raws_of(tenant_acme)] == ["小的"]


def test_the_same_message_sent_again_is_filed_once(smtp_port, acme_channel, tenant_acme):
    mail = customer_mail(subject="重复发送", message_id="<resent-1@example.cn>")
    send(smtp_port, [address_of(acme_channel)], mail)
    send(smtp_port, [address_of(acme_channel)], mail)
    with tenancy.activate(tenant_acme):
        assert RawInbound.objects.count() == 1
        assert Message.objects.filter(external_id="resent-1@example.cn").count() == 1


def test_a_database_failure_during_data_answers_451_keeps_nothing_and_the_retry_succeeds(
    smtp_port, acme_channel, globex_channel, tenant_acme, tenant_globex, monkeypatch
):
    real_receive = forwarding.receive_forwarded
    calls = {"n": 0}

    def fails_on_the_second_channel_once(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real_receive(**kwargs)

    monkeypatch.setattr(forwarding, "receive_forwarded", fails_on_the_second_channel_once)
    recipients = [address_of(acme_channel), address_of(globex_channel)]
    mail = customer_mail(subject="请稍后重试", message_id="<retry-me@example.cn>")
    with pytest.raises(smtplib.SMTPDataError) as failed:
        send(smtp_port, recipients, mail)
    assert failed.value.smtp_code == 451
    # The first channel's copy was rolled back with the second's: nothing is half-stored.
    assert raws_of(tenant_acme) == [] and raws_of(tenant_globex) == []
    assert tickets_of(tenant_acme) == []

    assert send(smtp_port, recipients, mail) == {}  # the sending server's retry
    assert [t.subject for t in tickets_of(tenant_acme)] == ["请稍后重试"]
    assert [t.subject for t in tickets_of(tenant_globex)] == ["请稍后重试"]


def test_a_paused_channel_still_takes_its_mail_and_a_switched_off_one_refuses_it(
    smtp_port, acme_channel, tenant_acme, admin_zhao
):
    from channels_in import mailboxes

    with tenancy.activate(tenant_acme):
        mailboxes.pause_channel(acting_agent=acting(admin_zhao), account=acme_channel)
    assert send(smtp_port, [address_of(acme_channel)], customer_mail(subject="暂停中")) == {}
    assert [t.subject for t in tickets_of(tenant_acme)] == ["暂停中"]

    with tenancy.activate(tenant_acme):
        acme_channel.is_active = False
        acme_channel.save(update_fields=["is_active"])
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.ehlo("mx.example.com")
        client.mail("relay@example.com")
        code, reason = client.rcpt(address_of(acme_channel))
    assert code == 550 and b"switched off" in reason


def test_past_the_channels_quota_a_sender_is_told_to_try_later(
    smtp_port, acme_channel, tenant_acme, settings
):
    settings.HELPDESK_INBOUND_RATE = "1/m"
    assert send(smtp_port, [address_of(acme_channel)], customer_mail(subject="第一封")) == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp_port, [address_of(acme_channel)], customer_mail(subject="第二封"))
    [(code, _)] = refused.value.recipients.values()
    assert code == 450
    assert [raw.subject for raw in raws_of(tenant_acme)] == ["第一封"]


def test_data_that_is_not_mail_is_refused_for_good(smtp_port, acme_channel, tenant_acme):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp_port, [address_of(acme_channel)], b"\r\n\r\njust some words\r\n")
    assert refused.value.smtp_code == 554
    assert raws_of(tenant_acme) == []


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inbound.localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_with_a_certificate_the_service_offers_starttls_and_never_auth(
    settings, tmp_path, acme_channel, tenant_acme
):
    settings.HELPDESK_SMTP_TLS_CERT, settings.HELPDESK_SMTP_TLS_KEY = self_signed_certificate(
        tmp_path
    )
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE  # self-signed, as many MX hosts' are
    with running_smtp_service() as port, smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mx.example.com")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=client_context)
        client.ehlo("mx.example.com")
        assert not client.has_extn("auth") and not client.has_extn("starttls")
        client.sendmail(
            "relay@example.com", [address_of(acme_channel)], customer_mail(subject="加密")
        )
    assert [t.subject for t in tickets_of(tenant_acme)] == ["加密"]


def test_with_a_real_worker_the_mail_is_accepted_first_and_filed_by_the_worker(
    real_worker, smtp_port, acme_channel, tenant_acme
):
    assert send(smtp_port, [address_of(acme_channel)], customer_mail(subject="保修期多久？")) == {}

    def filed() -> bool:
        return [t.subject for t in tickets_of(tenant_acme)] == ["保修期多久？"]

    wait_for(filed)


def test_the_serve_smtp_command_starts_answers_ehlo_and_stops_on_sigterm(tmp_path: Path):
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HELPDESK_INBOUND_DOMAIN": "mx.helpdesk.example"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve_smtp", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stderr.read().decode()[-2000:]) from None
                time.sleep(0.2)
        with client:
            code, greeting = client.ehlo("mx.example.com")
            assert code == 250
            assert greeting.startswith(b"mx.helpdesk.example")
            assert client.has_extn("size") and client.has_extn("8bitmime")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert b"SMTP service on 127.0.0.1:" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
