"""The real inbound SMTP service on a free loopback port, and a sending server's side of it."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from channels_in import forwarding
from channels_in.models import ChannelAccount, Mailbox
from channels_in.smtp_server import ForwardingController
from helpdesk import tenancy
from helpdesk.models import Tenant


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_smtp_service() -> Iterator[int]:
    """Start the service as ``serve_smtp`` does (settings read now); yields its port."""
    port = free_port()
    controller = ForwardingController(host="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def email_channel(tenant: Tenant, *, name: str, address: str) -> ChannelAccount:
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.create(kind="email", name=name)
        Mailbox.objects.create(account=account, address=address)
    account.tenant = tenant
    return account


def address_of(account: ChannelAccount) -> str:
    with tenancy.activate(account.tenant):
        account.refresh_from_db()
        return forwarding.forwarding_address(account)


def send(port: int, recipients: list[str], payload: bytes, sender: str = "relay@example.com"):
    """Deliver as a forwarding mail host does; returns what sendmail returns (refused ones)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, recipients, payload)
