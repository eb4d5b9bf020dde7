"""Safe egress: the servers merchants name must be public addresses on their service's ports,
checked when saved and again at every connect; failures tell merchants nothing about what
listens where."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from channels_in import imap
from channels_in.base import AdapterError
from channels_in.crypto import encrypt_secret
from channels_in.email import GuardedSMTP_SSL, validate_mailbox_hosts
from channels_in.models import ChannelAccount, Mailbox
from helpdesk import egress, tenancy
from helpdesk.egress import check_destination, connect_address
from helpdesk.errors import EgressRefused
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_email_roundtrip import Inbox, free_port, post_mail
from tests.conftest import login
from tickets.models import Message, Ticket

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "93.184.216.34"
NOT_PUBLIC = "The server {host} cannot be found or is not a public internet address (reference E-"

# (what the merchant typed, what it resolves to)
REFUSED = [
    pytest.param("127.0.0.1", "127.0.0.1", id="loopback"),
    pytest.param("::1", "::1", id="loopback-ipv6"),
    pytest.param("localhost", "127.0.0.1", id="localhost"),
    pytest.param("10.1.2.3", "10.1.2.3", id="private-10"),
    pytest.param("192.168.1.20", "192.168.1.20", id="private-192.168"),
    pytest.param("172.16.5.4", "172.16.5.4", id="private-172.16"),
    pytest.param("169.254.169.254", "169.254.169.254", id="cloud-metadata"),
    pytest.param("fd00:ec2::254", "fd00:ec2::254", id="cloud-metadata-ipv6"),
    pytest.param("100.64.0.1", "100.64.0.1", id="shared-address-space"),
    pytest.param("224.0.0.251", "224.0.0.251", id="multicast"),
    pytest.param("0.0.0.0", "0.0.0.0", id="unspecified"),
    pytest.param("::ffff:127.0.0.1", "::ffff:127.0.0.1", id="ipv4-mapped-loopback"),
    pytest.param("mail.rebind.example", "10.0.0.5", id="name-resolving-to-private"),
]


class Resolver:
    """DNS as the test says it is for the names it owns; the real thing for the rest."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {"localhost": ["127.0.0.1", "::1"]}
        self.asked: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        self.asked.append(host)
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        if not self.answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in self.answers[host]
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(egress.socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the code under test opens (they still go ahead)."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return opened


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port on loopback that would notice a connection (an internal service, say)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0.2)
        yield sock


def nobody_connected_to(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except TimeoutError:
        return True
    return False


def resolving(dns: Resolver, host: str, address: str) -> str:
    if host == "mail.rebind.example":
        dns.answers[host] = [address]
    return host


# The guard ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "address"), REFUSED)
@pytest.mark.parametrize(("purpose", "port"), [("imap", 993), ("smtp", 587), ("https", 443)])
def test_servers_that_are_not_public_are_refused_without_saying_what_they_are(
    host, address, purpose, port, dns
):
    resolving(dns, host, address)
    with pytest.raises(EgressRefused) as refused:
        check_destination(host, port, purpose=purpose)

    assert refused.value.code == "egress_refused" and refused.value.status == 400
    assert refused.value.message.startswith(NOT_PUBLIC.format(host=host))
    if host != address:
        assert address not in refused.value.message


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public(dns):
    dns.answers["mail.mixed.example"] = [PUBLIC, "127.0.0.1"]
    with pytest.raises(EgressRefused):
        check_destination("mail.mixed.example", 993, purpose="imap")


def test_a_name_that_does_not_resolve_is_refused_in_the_same_words_as_a_private_one(dns):
    dns.answers["db.internal"] = ["10.0.0.7"]
    dns.answers["nothing.internal"] = []
    with pytest.raises(EgressRefused) as private:
        check_destination("db.internal", 993, purpose="imap")
    with pytest.raises(EgressRefused) as unknown:
        check_destination("nothing.internal", 993, purpose="imap")

    def words(message: str, host: str) -> str:
        return message.replace(host, "HOST").rsplit("(reference", 1)[0]

    assert words(private.value.message, "db.internal") == words(
        unknown.value.message, "nothing.internal"
    )


@pytest.mark.parametrize(
    ("purpose", "port"),
    [("imap", 993), ("imap", 143), ("smtp", 25), ("smtp", 465), ("smtp", 587), ("https", 443)],
)
def test_a_public_address_on_its_services_port_passes(purpose, port):
    assert check_destination(PUBLIC, port, purpose=purpose) == [PUBLIC]
    assert connect_address(PUBLIC, port, purpose=purpose) == PUBLIC


def test_a_public_name_passes_with_every_address_it_resolves_to(dns):
    dns.answers["imap.acme-mail.example"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    assert check_destination("imap.acme-mail.example", 993, purpose="imap") == [
        PUBLIC,
        "2606:2800:220:1:248:1893:25c8:1946",
    ]


@pytest.mark.parametrize(
    ("purpose", "port"), [("imap", 22), ("imap", 587), ("smtp", 6379), ("https", 80)]
)
def test_a_port_that_is_not_the_services_is_refused(purpose, port):
    with pytest.raises(EgressRefused) as refused:
        check_destination(PUBLIC, port, purpose=purpose)
    assert f"Port {port} is not a {purpose.upper()} port" in refused.value.message
    assert refused.value.extra["field"] == "port"


def test_the_operators_allow_list_lets_a_loopback_host_and_port_through_and_nothing_else(
    allow_egress: Callable[[str, int], None],
):
    allow_egress("127.0.0.1", 40025)

    assert check_destination("127.0.0.1", 40025, purpose="smtp") == ["127.0.0.1"]
    with pytest.raises(EgressRefused):
        check_destination("127.0.0.1", 40026, purpose="smtp")
    with pytest.raises(EgressRefused):
        check_destination("127.0.0.2", 40025, purpose="smtp")


def test_by_default_nothing_is_allow_listed_and_loopback_is_refused():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_EGRESS")}
    env["DJANGO_SETTINGS_MODULE"] = "helpdesk.settings"
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from helpdesk.egress import check_destination\n"
        "from helpdesk.errors import EgressRefused\n"
        "print(settings.HELPDESK_EGRESS_ALLOW)\n"
        "try:\n"
        "    check_destination('127.0.0.1', 993, purpose='imap')\n"
        "    print('connected')\n"
        "except EgressRefused:\n"
        "    print('refused')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["[]", "refused"]


def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_refused_at_connect(dns):
    dns.answers["mail.rebind.example"] = [PUBLIC]
    assert check_destination("mail.rebind.example", 993, purpose="imap") == [PUBLIC]

    dns.answers["mail.rebind.example"] = ["127.0.0.1"]
    with pytest.raises(EgressRefused):
        connect_address("mail.rebind.example", 993, purpose="imap")


def test_a_failed_connection_is_told_with_a_reference_and_the_details_are_logged(caplog):
    told = egress.merchant_safe_error(
        ConnectionRefusedError(111, "Connection refused"),
        what="the IMAP server imap.acme.example:993",
    )

    assert told.startswith(
        "Could not connect to the IMAP server imap.acme.example:993 (reference E-"
    )
    assert "refused" not in told.lower()
    reference = told.rsplit("reference ", 1)[1].rstrip(")")
    assert any(
        reference in r.getMessage() and "Connection refused" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )


def self_signed(folder: Path, name: str) -> Path:
    """A certificate (and its key, in the same PEM file) for ``name`` only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def test_smtp_over_tls_goes_to_the_vetted_address_and_checks_the_certificate_for_the_name(
    tmp_path, dns, allow_egress
):
    identity = self_signed(tmp_path, "mail.acme-mail.example")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(identity)
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_tls)
    controller.start()
    try:
        for name in ("mail.acme-mail.example", "other.acme-mail.example"):
            dns.answers[name] = ["127.0.0.1"]
            allow_egress(name, port)
        trusting = ssl.create_default_context(cafile=str(identity))
        dns.asked.clear()

        with GuardedSMTP_SSL("mail.acme-mail.example", port, context=trusting, timeout=10) as smtp:
            smtp.sendmail(
                "support@acme.example", ["li.wei@example.cn"], b"Subject: hi\r\n\r\nhi\r\n"
            )

        assert len(inbox.received) == 1
        # Resolved once, by the guard: the connection went to the address it checked.
        assert dns.asked.count("mail.acme-mail.example") == 1
        # The certificate is still checked, against the name the merchant typed.
        with pytest.raises(ssl.SSLCertVerificationError):
            GuardedSMTP_SSL("other.acme-mail.example", port, context=trusting, timeout=10)
    finally:
        controller.stop()


# At save: the settings pages' check -----------------------------------------------------------


@pytest.mark.parametrize(("host", "address"), REFUSED)
@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_a_mailbox_naming_a_server_that_is_not_public_cannot_be_saved(server, host, address, dns):
    resolving(dns, host, address)
    mailbox = Mailbox(address="support@acme.example", **{f"{server}_host": host})

    with pytest.raises(EgressRefused) as refused:
        validate_mailbox_hosts(mailbox)

    assert refused.value.extra["field"] == f"{server}_host"
    assert refused.value.message.startswith(NOT_PUBLIC.format(host=host))


def test_a_mailbox_on_a_public_server_and_mail_ports_can_be_saved_and_a_wrong_port_cannot(dns):
    dns.answers["mail.acme-mail.example"] = [PUBLIC]
    mailbox = Mailbox(
        address="support@acme.example",
        imap_host="mail.acme-mail.example",
        imap_port=993,
        smtp_host="mail.acme-mail.example",
        smtp_port=465,
    )
    validate_mailbox_hosts(mailbox)

    mailbox.smtp_port = 3306
    with pytest.raises(EgressRefused) as refused:
        validate_mailbox_hosts(mailbox)
    assert refused.value.extra["field"] == "smtp_port"


# At connect: IMAP polling and SMTP replies ----------------------------------------------------


def _saved_earlier(dns: Resolver, host: str, address: str) -> str:
    """The name checked out when it was saved (public then), and resolves to ``address`` now."""
    dns.answers["mail.rebind.example"] = [PUBLIC]
    return resolving(dns, host, address)


@pytest.mark.django_db
@pytest.mark.parametrize(("host", "address"), REFUSED)
def test_polling_a_mailbox_on_a_server_that_is_not_public_pauses_it_and_connects_nowhere(
    host, address, in_acme, dns, connections, listener
):
    host = _saved_earlier(dns, host, address)
    account = ChannelAccount.objects.create(kind="email", name="Support")
    mailbox = Mailbox.objects.create(
        account=account,
        address="support@acme.example",
        imap_host=host,
        imap_port=listener.getsockname()[1],
        imap_use_ssl=False,
        imap_username="support",
        imap_password_encrypted=encrypt_secret("pw"),
    )

    with pytest.raises(AdapterError) as failed:
        imap.poll(mailbox_id=mailbox.pk)

    assert failed.value.permanent
    account.refresh_from_db()
    assert account.paused
    assert account.last_error.startswith("IMAP polling failed: " + NOT_PUBLIC.format(host=host))
    assert connections == [] and nobody_connected_to(listener)


@pytest.fixture
def acme_ticket(acme_mailbox: Mailbox, tenant_acme) -> Ticket:
    post_mail(acme_mailbox.account, customer_mail(subject="退款进度"))
    with tenancy.activate(tenant_acme):
        return Ticket.objects.get()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("host", "address"), REFUSED)
def test_a_reply_through_a_server_that_is_not_public_fails_pauses_the_channel_and_connects_nowhere(
    host, address, acme_mailbox, acme_ticket, agent_li, tenant_acme, dns, connections, listener
):
    host = _saved_earlier(dns, host, address)
    with tenancy.activate(tenant_acme):
        Mailbox.objects.filter(pk=acme_mailbox.pk).update(
            smtp_host=host, smtp_port=listener.getsockname()[1], smtp_use_tls=False
        )
    told = login(agent_li).post(f"/tickets/{acme_ticket.number}/reply/", {"text": "退款已提交。"})
    assert told.status_code == 302
    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        account = ChannelAccount.objects.get(pk=acme_mailbox.account_id)

    assert reply.delivery_state == "failed"
    assert reply.delivery_error.startswith(
        "channel paused: SMTP delivery failed: " + NOT_PUBLIC.format(host=host)
    )
    assert account.paused
    assert connections == [] and nobody_connected_to(listener)
