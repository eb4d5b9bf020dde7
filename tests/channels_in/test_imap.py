"""IMAP polling against a real IMAP server (pymap, in memory), from mailbox to ticket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from channels_in import imap, pipeline
from channels_in.base import AdapterError
from channels_in.crypto import encrypt_secret
from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk import tenancy
from helpdesk.models import Tenant
from tests.channels_in.imap_server import ImapServer
from tests.corpus import CORPUS
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db

ZAMMAD = CORPUS / "zammad"
# Three customers, three tickets; mail031 is GB2312-labelled but carries GBK-only characters.
FIRST_MAILS = {
    "mail001.box": "CI Daten für PublicView",
    "mail003.box": "Ticket Templates",
    "mail031.box": "內應力產生与注塑工艺条件之间的关系；",
}
LATER_MAIL = ("mail037.box", "Example: Java 8 Neuerungen")
NOT_MAIL = b"%PDF-1.4 this is a scanned invoice, not an email\r\n"


def corpus_mail(name: str) -> bytes:
    return (ZAMMAD / name).read_bytes()


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    server = ImapServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def support_mailbox(
    tenant_acme: Tenant, imap_server: ImapServer, allow_egress: Callable[[str, int], None]
) -> Callable[..., Mailbox]:
    allow_egress(imap_server.host, imap_server.port)

    def make(
        *, password: str = ImapServer.password, folder: str = "INBOX", **extra: Any
    ) -> Mailbox:
        with tenancy.activate(tenant_acme):
            account = ChannelAccount.objects.create(kind="email", name="Support")
            return Mailbox.objects.create(
                account=account,
                address="support@acme.example",
                imap_host=imap_server.host,
                imap_port=imap_server.port,
                imap_use_ssl=False,
                imap_username=imap_server.username,
                imap_password_encrypted=encrypt_secret(password),
                imap_folder=folder,
                **extra,
            )

    return make


@pytest.fixture
def poll_and_process(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[[Mailbox], int]:
    """Poll as the Celery task would, then let the after-commit pipeline work run."""

    def run(mailbox: Mailbox) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return imap.poll(mailbox_id=mailbox.pk)

    return run


def test_it_turns_new_mail_into_tickets_without_marking_it_read(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    uids = imap_server.append("INBOX", *(corpus_mail(name) for name in FIRST_MAILS))
    mailbox = support_mailbox()

    assert poll_and_process(mailbox) == 3

    raws = RawInbound.objects.all()
    assert raws.count() == 3
    assert {raw.source for raw in raws} == {RawInbound.Source.IMAP}
    assert {raw.state for raw in raws} == {RawInbound.State.PROCESSED}
    assert set(Ticket.objects.values_list("subject", flat=True)) == set(FIRST_MAILS.values())
    gbk = Ticket.objects.get(subject=FIRST_MAILS["mail031.box"])
    assert gbk.customer.identities.filter(value="zhengkang@ha.chinamobile.com").exists()

    mailbox.refresh_from_db()
    uidvalidity, flags = imap_server.folder_state("INBOX")
    assert mailbox.imap_uidvalidity == uidvalidity
    assert mailbox.imap_last_uid == max(uids)
    assert mailbox.imap_last_polled_at is not None
    # The merchant's own mail client still sees the mail as unread.
    assert all(b"\\Seen" not in value for value in flags.values())


def test_it_fetches_only_mail_that_arrived_since_the_last_poll(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    imap_server.append("INBOX", *(corpus_mail(name) for name in FIRST_MAILS))
    mailbox = support_mailbox()
    assert poll_and_process(mailbox) == 3

    # "UID n:*" still matches the newest message when n is past it: nothing is stored twice.
    assert poll_and_process(mailbox) == 0
    assert RawInbound.objects.count() == 3

    name, subject = LATER_MAIL
    [uid] = imap_server.append("INBOX", corpus_mail(name))
    assert poll_and_process(mailbox) == 1

    assert RawInbound.objects.count() == 4
    assert Ticket.objects.filter(subject=subject).count() == 1
    mailbox.refresh_from_db()
    assert mailbox.imap_last_uid == uid


def test_a_renumbered_folder_is_fetched_again_without_duplicate_tickets(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    mails = [corpus_mail(name) for name in FIRST_MAILS]
    imap_server.append("Support", *mails)
    mailbox = support_mailbox(folder="Support")
    assert poll_and_process(mailbox) == 3
    mailbox.refresh_from_db()
    old_uidvalidity = mailbox.imap_uidvalidity

    # The server rebuilt the folder: same mail, new UIDs, new UIDVALIDITY, plus one new mail.
    name, subject = LATER_MAIL
    new_uidvalidity = imap_server.recreate_folder("Support", [*mails, corpus_mail(name)])
    assert new_uidvalidity != old_uidvalidity

    assert poll_and_process(mailbox) == 1

    assert RawInbound.objects.count() == 4
    assert Ticket.objects.count() == 4
    assert Message.objects.count() == 4
    assert Ticket.objects.filter(subject=subject).exists()
    mailbox.refresh_from_db()
    assert mailbox.imap_uidvalidity == new_uidvalidity
    _uidvalidity, flags = imap_server.folder_state("Support")
    assert mailbox.imap_last_uid == max(flags)


def test_a_refused_password_pauses_the_channel_and_says_why(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
) -> None:
    imap_server.append("INBOX", corpus_mail("mail001.box"))
    mailbox = support_mailbox(password="not-the-password")

    with pytest.raises(AdapterError) as caught:
        imap.poll(mailbox_id=mailbox.pk)

    assert caught.value.permanent
    account = ChannelAccount.objects.get(pk=mailbox.account_id)
    assert account.paused
    assert "refused the username or password" in account.last_error
    assert account.last_error_at is not None
    assert not RawInbound.objects.exists()
    # A paused channel is not polled again (no repeated bad logins) until an admin fixes it.
    assert imap.poll(mailbox_id=mailbox.pk) == 0


def test_an_unreachable_server_is_a_transient_error_shown_on_the_channel(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    mailbox = support_mailbox()
    imap_server.stop()

    with pytest.raises(AdapterError) as caught:
        imap.poll(mailbox_id=mailbox.pk)

    assert not caught.value.permanent
    account = ChannelAccount.objects.get(pk=mailbox.account_id)
    assert not account.paused
    assert account.last_error.startswith(
        f"Could not connect to the IMAP server {imap_server.host}:{imap_server.port} (reference E-"
    )
    assert "refused" not in account.last_error.lower()  # nothing listens: not theirs to know

    # Once the server is back, a successful poll clears the error.
    imap_server.start()
    Mailbox.objects.filter(pk=mailbox.pk).update(imap_port=imap_server.port)
    imap_server.append("INBOX", corpus_mail("mail001.box"))
    assert poll_and_process(mailbox) == 1
    account.refresh_from_db()
    assert account.last_error == ""


def test_a_message_that_is_not_mail_does_not_block_later_mail(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    name, subject = LATER_MAIL
    uids = imap_server.append("INBOX", NOT_MAIL, corpus_mail(name))
    mailbox = support_mailbox()

    assert poll_and_process(mailbox) == 1

    # The blob is kept where an admin sees it, failed with the reason; the mail went through.
    blob = RawInbound.objects.get(state="failed")
    assert "not an email message" in blob.error
    assert bytes(blob.payload).startswith(b"%PDF-1.4 this is a scanned invoice")
    assert RawInbound.objects.filter(state="processed").count() == 1
    assert Ticket.objects.filter(subject=subject).exists()
    mailbox.refresh_from_db()
    assert mailbox.imap_last_uid == max(uids)
    assert poll_and_process(mailbox) == 0


def test_a_poll_that_fails_midway_keeps_what_it_stored_and_resumes_after_it(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uids = imap_server.append("INBOX", *(corpus_mail(name) for name in FIRST_MAILS))
    mailbox = support_mailbox()
    real_receive = pipeline.receive
    calls = 0

    def receive_then_crash(**kwargs: Any) -> tuple[RawInbound, bool]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("worker killed")
        return real_receive(**kwargs)

    monkeypatch.setattr(pipeline, "receive", receive_then_crash)
    with pytest.raises(AdapterError, match="worker killed") as failure:
        poll_and_process(mailbox)
    assert not failure.value.permanent  # retried by the next poll

    assert RawInbound.objects.count() == 1
    mailbox.account.refresh_from_db()
    assert "worker killed" in mailbox.account.last_error  # shown to the admin
    mailbox.refresh_from_db()
    assert mailbox.imap_last_uid == min(uids)

    monkeypatch.setattr(pipeline, "receive", real_receive)
    assert poll_and_process(mailbox) == 2
    assert RawInbound.objects.count() == 3
    assert Ticket.objects.count() == 3


def test_the_scheduled_poll_reaches_every_connected_mailbox(
    tenant_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_in.tasks import poll_all_mailboxes

    imap_server.append("INBOX", corpus_mail("mail001.box"))
    support_mailbox()

    with django_capture_on_commit_callbacks(execute=True):
        assert poll_all_mailboxes() == 1

    with tenancy.activate(tenant_acme):
        assert Ticket.objects.filter(subject=FIRST_MAILS["mail001.box"]).exists()


def test_a_newly_connected_mailbox_brings_in_recent_mail_only(
    in_acme: Tenant,
    imap_server: ImapServer,
    support_mailbox: Callable[..., Mailbox],
    poll_and_process: Callable[[Mailbox], int],
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    years_ago = timezone.now() - timedelta(days=800)
    old_uids = imap_server.append("INBOX", corpus_mail("mail001.box"), received_at=years_ago)
    name, subject = LATER_MAIL
    imap_server.append("INBOX", corpus_mail(name))
    mailbox = support_mailbox()

    assert poll_and_process(mailbox) == 1
    assert list(Ticket.objects.values_list("subject", flat=True)) == [subject]
    mailbox.refresh_from_db()
    assert mailbox.imap_last_uid > max(old_uids)
    assert poll_and_process(mailbox) == 0  # the old mail is not picked up later either
