"""import_mail: a merchant's archive of .eml, mbox and Maildir mail becomes tickets, once."""

from __future__ import annotations

import mailbox
import shutil
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk import tenancy
from helpdesk.models import Tenant
from tests.corpus import CORPUS, collapse, corpus_mails
from tickets.models import Channel, Message, Ticket

# Person-to-person corpus mails (mail005 starts with an mbox "From " line) and one bounce.
HUMAN_CORPUS = ["zammad/mail005.box", "zammad/mail037.box", "zammad/mail065.box"]
BOUNCE_CORPUS = "zammad/mail053.box"


def _text_mail(
    *, sender: str, subject: str, body: str, message_id: str, charset: str = "utf-8"
) -> bytes:
    mail = MIMEText(body, "plain", charset)
    mail["From"] = sender
    mail["To"] = "support@acme.example"
    mail["Subject"] = Header(subject, charset).encode()
    mail["Date"] = "Sun, 01 Nov 2026 10:00:00 +0800"
    mail["Message-ID"] = f"<{message_id}>"
    return mail.as_bytes()


MBOX_MAILS = [
    {
        "sender": formataddr(("王芳", "wangfang@example.cn"), charset="gbk"),
        "subject": "订单 SO20261105 的吸油烟机还没到货",
        "body": "您好，我上周买的吸油烟机还没有到货，请帮忙查一下物流。谢谢！",
        "message_id": "gbk-1@example.cn",
        "charset": "gbk",
    },
    {
        "sender": "Emily Carter <emily.carter@example.com>",
        "subject": "Kettle arrived broken",
        "body": "Hello, the kettle arrived with a cracked lid. Can you send a new one?",
        "message_id": "kettle-2@example.com",
    },
    {
        "sender": "Zhang Min <zhang.min@example.cn>",
        "subject": "发票 invoice request",
        "body": "请开具增值税发票，抬头：张敏。",
        "message_id": "invoice-3@example.cn",
    },
]
MAILDIR_MAIL = {
    "sender": "Li Wei <li.wei@example.cn>",
    "subject": "Gas hob will not ignite",
    "body": "The left burner clicks but never lights.",
    "message_id": "hob-4@example.cn",
}


@pytest.fixture
def acme_mail_channel(in_acme: Tenant) -> ChannelAccount:
    account = ChannelAccount.objects.create(kind=Channel.EMAIL, name="Support mail")
    Mailbox.objects.create(account=account, address="support@acme.example")
    return account


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A migrated helpdesk's export: loose corpus mail, an mbox, a Maildir and a stray file."""
    root = tmp_path / "export"
    (root / "loose" / "older").mkdir(parents=True)
    for index, mail_id in enumerate([*HUMAN_CORPUS, BOUNCE_CORPUS]):
        folder = root / "loose" / ("older" if index % 2 else "")
        shutil.copy(CORPUS / mail_id, folder / Path(mail_id).name)

    box = mailbox.mbox(root / "inbox-2025")  # no extension: recognised by its content
    for fields in MBOX_MAILS:
        box.add(_text_mail(**fields))
    box.flush()
    box.close()

    maildir = mailbox.Maildir(root / "maildir", create=True)
    maildir.add(_text_mail(**MAILDIR_MAIL))
    maildir.close()

    (root / "notes.txt").write_text("Remember to export the contacts too.\n")
    return root


def _import(*args: str, tenant: str = "acme", channel: int) -> str:
    out = StringIO()
    call_command("import_mail", *args, tenant=tenant, channel=channel, no_progress=True, stdout=out)
    return out.getvalue()


def test_it_imports_eml_mbox_and_maildir_mail_as_tickets(
    acme_mail_channel: ChannelAccount, archive: Path
) -> None:
    output = _import(str(archive), channel=acme_mail_channel.pk)

    lines = output.splitlines()
    assert lines[0] == "imported: 7, duplicate: 0, ignored (automated): 1, failed: 1"
    assert len(lines) == 2
    assert lines[1].startswith(f"failed: {archive / 'notes.txt'} (raw #")
    assert "not an email message" in lines[1]
    # What the import refused is kept for an admin, as IMAP polling does.
    refused = RawInbound.objects.get(state="failed")
    assert refused.source == "import"
    assert bytes(refused.payload) == b"Remember to export the contacts too.\n"
    assert "notes.txt" in refused.error and "not an email message" in refused.error

    subjects = set(Ticket.objects.values_list("subject", flat=True))
    corpus = {mail.id: mail for mail in corpus_mails()}
    for mail_id in HUMAN_CORPUS:
        assert collapse(corpus[mail_id].expected.subject) in subjects
    assert {fields["subject"] for fields in MBOX_MAILS} <= subjects
    assert MAILDIR_MAIL["subject"] in subjects
    assert Ticket.objects.count() == 7

    chinese = Message.objects.get(external_id="gbk-1@example.cn")
    assert chinese.body_text.startswith("您好，我上周买的吸油烟机还没有到货")
    assert chinese.author_customer.name == "王芳"
    raws = RawInbound.objects.filter(account=acme_mail_channel)
    assert set(raws.values_list("source", flat=True)) == {RawInbound.Source.IMPORT}
    assert raws.filter(state=RawInbound.State.IGNORED).count() == 1


def test_importing_the_same_archive_again_reports_duplicates_and_creates_nothing(
    acme_mail_channel: ChannelAccount, archive: Path
) -> None:
    _import(str(archive), channel=acme_mail_channel.pk)
    tickets = Ticket.objects.count()
    messages = Message.objects.count()

    output = _import(str(archive), channel=acme_mail_channel.pk)

    assert output.splitlines()[0] == "imported: 0, duplicate: 8, ignored (automated): 0, failed: 1"
    assert Ticket.objects.count() == tickets
    assert Message.objects.count() == messages


def test_a_single_eml_file_can_be_imported(acme_mail_channel: ChannelAccount) -> None:
    output = _import(str(CORPUS / "zammad" / "mail037.box"), channel=acme_mail_channel.pk)

    assert output == "imported: 1, duplicate: 0, ignored (automated): 0, failed: 0\n"


def test_an_unknown_channel_id_is_refused(acme_mail_channel: ChannelAccount, archive: Path) -> None:
    with pytest.raises(CommandError, match="no channel account with id 999999"):
        _import(str(archive), channel=999999)
    assert not RawInbound.objects.exists()


def test_another_merchants_channel_is_refused(
    acme_mail_channel: ChannelAccount, tenant_globex: Tenant, archive: Path
) -> None:
    with tenancy.activate(tenant_globex):
        globex_channel = ChannelAccount.objects.create(kind=Channel.EMAIL, name="Globex mail")

    with pytest.raises(CommandError, match="no channel account"):
        _import(str(archive), channel=globex_channel.pk)
    with tenancy.activate(tenant_globex):
        assert not RawInbound.objects.exists()


def test_a_channel_that_is_not_email_is_refused(in_acme: Tenant, archive: Path) -> None:
    chat = ChannelAccount.objects.create(kind=Channel.CHAT, name="Shop chat")

    with pytest.raises(CommandError, match="not an email channel"):
        _import(str(archive), channel=chat.pk)


def test_an_unknown_merchant_is_refused(acme_mail_channel: ChannelAccount, archive: Path) -> None:
    with pytest.raises(CommandError, match="No merchant"):
        _import(str(archive), tenant="nobody", channel=acme_mail_channel.pk)


def test_a_missing_path_is_refused_before_anything_is_imported(
    acme_mail_channel: ChannelAccount, archive: Path, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match="no such file or folder"):
        _import(str(archive), str(tmp_path / "missing"), channel=acme_mail_channel.pk)
    assert not RawInbound.objects.exists()
