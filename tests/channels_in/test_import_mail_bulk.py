"""import_mail on a large archive: streamed, stored in batches, filed oldest first, once."""

from __future__ import annotations

import mailbox
from email.mime.text import MIMEText
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from channels_in import archive_import, mail_archive
from channels_in.models import ChannelAccount, Mailbox, RawInbound
from channels_in.pipeline import stale_inbound
from helpdesk.models import Tenant
from tickets.models import Channel, Message, Ticket


def _mail(
    *,
    message_id: str,
    subject: str,
    date: str | None,
    sender: str = "Emily Carter <emily.carter@example.com>",
    in_reply_to: str | None = None,
    body: str = "Hello, the kettle arrived with a cracked lid.",
) -> bytes:
    mail = MIMEText(body, "plain", "utf-8")
    mail["From"] = sender
    mail["To"] = "support@acme.example"
    mail["Subject"] = subject
    if date is not None:
        mail["Date"] = date
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to is not None:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = f"<{in_reply_to}>"
    return mail.as_bytes()


def _write_mbox(path: Path, payloads: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for payload in payloads:
        box.add(payload)
    box.flush()
    box.close()
    return path


def _numbered(count: int) -> list[bytes]:
    return [
        _mail(
            message_id=f"bulk-{number}@example.com",
            subject=f"Order SO2026{number:05d} has not arrived",
            date=f"Mon, {1 + number % 28:02d} Jun 2026 10:{number % 60:02d}:00 +0800",
            sender=f"Customer {number} <customer{number}@example.com>",
        )
        for number in range(count)
    ]


@pytest.fixture
def acme_mail_channel(in_acme: Tenant) -> ChannelAccount:
    account = ChannelAccount.objects.create(kind=Channel.EMAIL, name="Support mail")
    Mailbox.objects.create(account=account, address="support@acme.example")
    return account


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3, so a few messages span several storing transactions."""
    monkeypatch.setattr(archive_import, "STORE_BATCH", 3)


def _import(path: Path, channel: ChannelAccount) -> list[str]:
    out = StringIO()
    call_command(
        "import_mail", str(path), tenant="acme", channel=channel.pk, no_progress=True, stdout=out
    )
    return out.getvalue().splitlines()


def test_a_reply_listed_before_the_mail_it_answers_still_threads_onto_its_ticket(
    acme_mail_channel: ChannelAccount, tmp_path: Path
) -> None:
    # Nine days apart: only the date order (not the 72-hour window) can put them together.
    original = _mail(
        message_id="kettle-1@example.com",
        subject="Kettle arrived broken",
        date="Thu, 01 Jan 2026 10:00:00 +0800",
    )
    reply = _mail(
        message_id="kettle-2@example.com",
        subject="Re: Kettle arrived broken",
        date="Sat, 10 Jan 2026 09:00:00 +0800",
        in_reply_to="kettle-1@example.com",
        body="Any news on this? Still waiting.",
    )
    archive = _write_mbox(tmp_path / "export.mbox", [reply, original])

    assert _import(archive, acme_mail_channel) == [
        "imported: 2, duplicate: 0, ignored (automated): 0, failed: 0"
    ]

    ticket = Ticket.objects.get()
    assert ticket.subject == "Kettle arrived broken"
    assert list(ticket.messages.order_by("pk").values_list("external_id", flat=True)) == [
        "kettle-1@example.com",
        "kettle-2@example.com",
    ]


def test_a_mail_without_a_date_is_filed_after_the_mail_before_it_in_the_archive(
    acme_mail_channel: ChannelAccount, tmp_path: Path
) -> None:
    dated_late = _mail(
        message_id="late@example.com", subject="Late", date="Sat, 10 Jan 2026 09:00:00 +0800"
    )
    undated = _mail(message_id="undated@example.com", subject="Undated", date=None)
    dated_early = _mail(
        message_id="early@example.com", subject="Early", date="Thu, 01 Jan 2026 10:00:00 +0800"
    )
    archive = _write_mbox(tmp_path / "export.mbox", [dated_late, undated, dated_early])

    _import(archive, acme_mail_channel)

    filed = Message.objects.order_by("pk").values_list("external_id", flat=True)
    assert list(filed) == ["early@example.com", "late@example.com", "undated@example.com"]


def test_importing_the_same_mbox_again_is_all_duplicates(
    acme_mail_channel: ChannelAccount, tmp_path: Path, small_batches: None
) -> None:
    archive = _write_mbox(tmp_path / "export.mbox", _numbered(8))
    assert _import(archive, acme_mail_channel) == [
        "imported: 8, duplicate: 0, ignored (automated): 0, failed: 0"
    ]
    tickets, messages = Ticket.objects.count(), Message.objects.count()

    assert _import(archive, acme_mail_channel) == [
        "imported: 0, duplicate: 8, ignored (automated): 0, failed: 0"
    ]
    assert (Ticket.objects.count(), Message.objects.count()) == (tickets, messages)
    assert RawInbound.objects.count() == 8


def test_a_mail_listed_twice_in_one_archive_is_filed_once(
    acme_mail_channel: ChannelAccount, tmp_path: Path, small_batches: None
) -> None:
    mails = _numbered(4)
    archive = _write_mbox(tmp_path / "export.mbox", [*mails, mails[1]])

    assert _import(archive, acme_mail_channel) == [
        "imported: 4, duplicate: 1, ignored (automated): 0, failed: 0"
    ]
    assert Message.objects.count() == 4


def test_a_broken_message_in_the_middle_is_reported_and_the_rest_imported(
    acme_mail_channel: ChannelAccount, tmp_path: Path, small_batches: None
) -> None:
    mails = _numbered(6)
    not_mail = b"This line is all there is: no header block at all.\n"
    no_sender = _mail(
        message_id="nobody@example.com",
        subject="Who wrote this?",
        date="Mon, 01 Jun 2026 11:00:00 +0800",
        sender="",
    ).replace(b"From: \n", b"")
    archive = _write_mbox(
        tmp_path / "export.mbox", [*mails[:2], not_mail, *mails[2:4], no_sender, *mails[4:]]
    )

    lines = _import(archive, acme_mail_channel)

    assert lines[0] == "imported: 6, duplicate: 0, ignored (automated): 0, failed: 2"
    assert lines[1].startswith(f"failed: {archive}#3 (raw #")
    assert "not an email message" in lines[1]
    assert lines[2].startswith(f"failed: {archive}#6 (raw #")
    assert "no sender address" in lines[2]
    failed = RawInbound.objects.filter(state=RawInbound.State.FAILED)
    assert failed.count() == 2
    assert all(raw.error for raw in failed)
    assert Message.objects.count() == 6


def test_an_import_stopped_before_filing_leaves_its_mail_to_the_next_run_not_the_sweep(
    acme_mail_channel: ChannelAccount,
    tmp_path: Path,
    small_batches: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = _write_mbox(tmp_path / "export.mbox", _numbered(5))

    def interrupted(**kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(archive_import, "file_stored", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _import(archive, acme_mail_channel)
    assert RawInbound.objects.filter(state=RawInbound.State.RECEIVED).count() == 5
    with transaction.atomic():
        assert stale_inbound() == []  # held by the import: no worker files them out of order

    assert _import(archive, acme_mail_channel) == [
        "imported: 5, duplicate: 0, ignored (automated): 0, failed: 0"
    ]


def test_the_import_reads_an_mbox_as_a_stream_without_mailbox_mbox(
    acme_mail_channel: ChannelAccount,
    tmp_path: Path,
    small_batches: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = _write_mbox(tmp_path / "export.mbox", _numbered(7))

    def whole_file_table(*args: object, **kwargs: object) -> None:
        raise AssertionError("mailbox.mbox keeps a table of every message: not for imports")

    monkeypatch.setattr(mailbox, "mbox", whole_file_table)

    assert _import(archive, acme_mail_channel) == [
        "imported: 7, duplicate: 0, ignored (automated): 0, failed: 0"
    ]


MBOX_EDGE_CASES = (
    b"From a@example.com Thu Jan  1 00:00:00 2026\nSubject: one\n\nbody\n>From quoted\n\n"
    b"From b@example.com Thu Jan  1 00:00:00 2026\nSubject: two\n\nno blank line after\n"
    b"From c@example.com Thu Jan  1 00:00:00 2026\nSubject: three\n\n\n\nblank lines\n\n\n"
    b"From d@example.com Thu Jan  1 00:00:00 2026\n\n"
    b"From e@example.com Thu Jan  1 00:00:00 2026\nSubject: crlf\r\n\r\nbody\r\n\r\n"
    b"From f@example.com Thu Jan  1 00:00:00 2026\nSubject: last, no newline at the end"
)


def test_the_stream_reader_yields_the_bytes_mailbox_mbox_does(tmp_path: Path) -> None:
    # The same bytes, so a mail without a Message-ID keeps its digest (and its dedupe key).
    path = tmp_path / "edge.mbox"
    path.write_bytes(MBOX_EDGE_CASES)
    box = mailbox.mbox(path, factory=None, create=False)
    expected = [box.get_bytes(key) for key in box.iterkeys()]
    box.close()

    assert list(mail_archive.read_mbox(path)) == expected


def test_counting_an_mbox_agrees_with_mailbox_mbox_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge.mbox"
    path.write_bytes(MBOX_EDGE_CASES * 3)
    box = mailbox.mbox(path, factory=None, create=False)
    expected = len(box.keys())
    box.close()

    for chunk in (1, 3, 5, 6, 7, 64, 1 << 20):
        monkeypatch.setattr(mail_archive, "COUNT_CHUNK_BYTES", chunk)
        assert mail_archive.count_mbox(path) == expected


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bars_show_messages_per_second_for_storing_and_filing(
    acme_mail_channel: ChannelAccount, tmp_path: Path
) -> None:
    archive = _write_mbox(tmp_path / "export.mbox", _numbered(3))
    terminal = _Terminal()

    archive_import.import_archive(
        account=acme_mail_channel,
        sources=mail_archive.scan([archive]),
        show_progress=True,
        progress_file=terminal,
    )

    shown = terminal.getvalue()
    assert "storing: 100%" in shown and "filing: 100%" in shown
    assert shown.count("msg/s]") >= 2
