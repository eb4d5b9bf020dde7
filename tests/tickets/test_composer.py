"""The reply composer: files on replies and notes, CC and BCC, the signature and the quoted
history in the mail the customer receives, and conversations an agent starts."""

from __future__ import annotations

import email
import re
from datetime import datetime
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput
from helpdesk.models import Membership
from helpdesk.permissions import SYSTEM
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_email_roundtrip import (  # noqa: F401 (fixtures)
    mailbox_on_smtp,
    post_mail,
    smtp_server,
)
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import composer, services
from tickets.audit import AuditKind
from tickets.models import Attachment, AuditEvent, Customer, Message, Ticket
from tickets.outbound_conversations import start_conversation

pytestmark = pytest.mark.django_db

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def _stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()]


def _email_ticket(account, *, recipients: list[str] | None = None) -> Ticket:
    """A ticket with one mail from 李伟, received on ``account``."""
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="吸油烟机噪音很大", channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        channel_account=account,
        author_customer=customer,
        subject=ticket.subject,
        body_text="你好，我的吸油烟机安装后噪音很大。",
        metadata={
            "from": "li.wei@example.cn",
            "recipients": recipients or ["support@acme.example"],
        },
    )
    return ticket


def _files(*pairs: tuple[str, bytes]) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, content) for name, content in pairs]


# --- files on replies and notes -----------------------------------------------------------------


def test_a_reply_carries_files_the_agent_can_download_under_it(acme_email, agent_li, _media):
    ticket = _email_ticket(acme_email)
    client = login(agent_li)
    response = client.post(
        f"/tickets/{ticket.number}/reply/",
        {
            "text": "请看安装说明和照片。",
            "status": "pending",
            "attachments": _files(("照片.png", PNG), ("安装说明.txt", "先拧紧螺丝。".encode())),
        },
    )
    assert response.status_code == 302
    reply = Message.objects.get(direction="outbound")
    files = {a.filename: a for a in reply.attachments.all()}
    assert set(files) == {"照片.png", "安装说明.txt"}
    assert files["照片.png"].content_type == "image/png"  # sniffed from the bytes
    assert files["安装说明.txt"].content_type == "text/plain"
    assert files["照片.png"].size == len(PNG)

    page = client.get(f"/tickets/{ticket.number}/").content.decode()
    reply_article = page[page.index(f'id="m{reply.pk}"') :]
    assert f'href="/tickets/attachments/{files["照片.png"].pk}/"' in reply_article
    download = client.get(f"/tickets/attachments/{files['安装说明.txt'].pk}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == "先拧紧螺丝。".encode()


def test_an_internal_note_carries_files_too(acme_email, agent_li):
    ticket = _email_ticket(acme_email)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/note/",
        {"text": "供应商的回复见附件", "attachments": _files(("supplier.png", PNG))},
        follow=True,
    )
    assert response.status_code == 200
    note = Message.objects.get(direction="note")
    assert [a.filename for a in note.attachments.all()] == ["supplier.png"]
    assert "supplier.png" in response.content.decode()


def test_files_over_the_merchants_limit_are_refused_on_the_form_with_the_text_kept(
    acme_email, agent_li, tenant_acme, _media
):
    tenant_acme.max_attachment_bytes = 1024
    tenant_acme.save()
    ticket = _email_ticket(acme_email)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {
            "text": "视频请查收",
            "cc": "wife@example.cn",
            "status": "solved",
            "attachments": _files(("unboxing.mp4", b"\x00" * 5000)),
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "The files come to 4.9\xa0KB; this merchant&#x27;s limit is 1.0\xa0KB" in page
    assert "Choose your files again before sending." in page
    assert 'data-draft="reply">视频请查收</textarea>' in page
    assert 'name="cc" value="wife@example.cn"' in page
    assert '<option value="solved" selected>' in page
    assert not Message.objects.filter(direction="outbound").exists()
    assert not Attachment.objects.exists()
    assert _stored_files(_media) == []


def test_a_note_with_too_many_files_is_refused_on_the_note_form(acme_email, agent_li):
    ticket = _email_ticket(acme_email)
    many = _files(*[(f"scan-{n}.txt", b"x") for n in range(composer.MAX_FILES + 1)])
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/note/", {"text": "扫描件", "attachments": many}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "At most 10 files can go with one message" in page
    assert 'data-draft="note">扫描件</textarea>' in page
    assert not Message.objects.filter(direction="note").exists()


def test_a_channel_that_cannot_carry_files_refuses_them_and_sends_nothing(agent_li, in_acme):
    customer = CustomerFactory(name="Wei")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="via the shop app", channel="api"
    )
    with pytest.raises(BadInput) as refused:
        services.reply_to_customer(
            acting_agent=acting(agent_li),
            ticket=ticket,
            text="See the manual",
            attachments=[ContentFile(b"%PDF-1.4", name="manual.pdf")],
        )
    assert refused.value.message == "Files cannot be sent on API: send the text alone, or a link"
    with pytest.raises(BadInput, match="CC and BCC are for email only"):
        services.reply_to_customer(
            acting_agent=acting(agent_li), ticket=ticket, text="Hi", cc="boss@example.com"
        )
    assert not Message.objects.filter(direction="outbound").exists()


# --- CC and BCC ---------------------------------------------------------------------------------


def test_cc_is_filled_in_as_reply_all_without_the_merchants_or_customers_addresses(
    acme_email, agent_li
):
    ticket = _email_ticket(
        acme_email,
        recipients=["support@acme.example", "wife@example.cn", "li.wei@example.cn"],
    )
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert 'name="cc" value="wife@example.cn"' in page
    assert 'name="bcc" value=""' in page
    assert 'type="file" name="attachments" multiple' in page


def test_a_bad_cc_address_is_a_form_error_and_nothing_is_sent(acme_email, agent_li):
    ticket = _email_ticket(acme_email)
    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {"text": "您好", "cc": "wife@example.cn, not-an-address"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "not-an-address is not an email address" in page
    assert 'name="cc" value="wife@example.cn, not-an-address"' in page
    assert not Message.objects.filter(direction="outbound").exists()


def test_copies_are_checked_lower_cased_and_listed_once():
    assert composer.copy_addresses(
        "Wife <Wife@Example.cn>; boss@example.com,, wife@example.cn", field="cc"
    ) == ["wife@example.cn", "boss@example.com"]
    for bad in ("wife@", "a@b.c d@e.f", "<>"):
        with pytest.raises(BadInput):
            composer.copy_addresses(bad, field="bcc")


# --- what the customer receives -----------------------------------------------------------------


def _sent(inbox) -> tuple[list[str], bytes, email.message.EmailMessage]:
    assert len(inbox.received) == 1
    _mail_from, recipients, content = inbox.received[0]
    return recipients, content, email.message_from_bytes(content, policy=policy.default)


@pytest.mark.django_db(transaction=True)
def test_the_reply_mail_has_the_signature_the_quote_the_files_and_the_copies(
    mailbox_on_smtp,  # noqa: F811
    smtp_server,  # noqa: F811
    agent_li,
    tenant_acme,
):
    inbox, _ = smtp_server
    tenant_acme.locale = "en"
    tenant_acme.save()
    Membership.objects.filter(tenant=tenant_acme, user=agent_li).update(
        signature="李丽\nAcme 家电 售后服务"
    )
    written = datetime(2026, 11, 30, 1, 5, tzinfo=ZoneInfo("UTC"))  # 09:05 in Shanghai
    post_mail(
        mailbox_on_smtp.account,
        customer_mail(
            subject="退款进度",
            body="我的退款到哪了？\n订单号 SO20260001",
            message_id="<q1@example.cn>",
            date=written,
        ),
    )
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()

    response = login(agent_li).post(
        f"/tickets/{ticket.number}/reply/",
        {
            "text": "您好，退款已经提交。",
            "cc": "Wife <wife@example.cn>",
            "bcc": "audit@acme.example",
            "attachments": _files(("退款凭证.png", PNG)),
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Reply sent." in page
    # The agents see who else got it; the customer never sees the Bcc.
    assert "Cc: wife@example.cn · Bcc: audit@acme.example" in page

    recipients, content, sent = _sent(inbox)
    assert sorted(recipients) == ["audit@acme.example", "li.wei@example.cn", "wife@example.cn"]
    assert sent["Cc"] == "wife@example.cn"
    assert b"audit@acme.example" not in content  # Bcc: the envelope only, never a header
    assert sent["In-Reply-To"] == "<q1@example.cn>"  # threading as before
    text = sent.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("您好，退款已经提交。\n\n-- \n李丽\nAcme 家电 售后服务\n\n")
    assert (
        "On 2026-11-30 09:05, 李伟 <li.wei@example.cn> wrote:\n"
        "> 我的退款到哪了？\n> 订单号 SO20260001" in text
    )
    [attached] = list(sent.iter_attachments())
    assert attached.get_filename() == "退款凭证.png"
    assert attached.get_content_type() == "image/png"
    assert attached.get_content() == PNG

    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        assert (reply.cc, reply.bcc) == (["wife@example.cn"], ["audit@acme.example"])
        assert reply.body_text == "您好，退款已经提交。"  # what the agent typed, shown on the page
        assert "售后服务" in reply.full_text  # what was sent, behind "Show quoted text"


def test_a_long_customer_message_is_quoted_in_part():
    from channels_in.mail import outgoing

    quote = outgoing.quoted(
        text="\n".join(f"line {n}" for n in range(100)),
        sender_name="",
        sender_address="li.wei@example.cn",
        written_at=datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("UTC")),
        time_zone="America/New_York",
        language="en",
    )
    lines = quote.splitlines()
    assert lines[0] == "On 2026-11-30 07:00, li.wei@example.cn wrote:"
    assert lines[1] == "> line 0"
    assert len(lines) == outgoing.QUOTE_MAX_LINES + 2
    assert lines[-1] == "> [...]"


# --- new conversations --------------------------------------------------------------------------


def test_the_new_conversation_page_offers_the_merchants_email_channels(
    acme_email, agent_li, tenant_globex
):
    with tenancy.activate(tenant_globex):
        from channels_in.models import ChannelAccount, Mailbox

        theirs = ChannelAccount.objects.create(kind="email", name="Globex support")
        Mailbox.objects.create(account=theirs, address="help@globex.example")
    with tenancy.activate(acme_email.tenant):
        customer = _email_ticket(acme_email).customer  # the agent may see them: a ticket in reach
    client = login(agent_li)
    page = client.get(f"/tickets/new/?customer={customer.pk}").content.decode()
    assert "Acme support &lt;support@acme.example&gt;" in page
    assert "globex" not in page.lower()
    assert 'name="to" value="li.wei@example.cn"' in page
    # Reached from the ticket list and from the customer's page.
    assert 'href="/tickets/new/"' in client.get("/tickets/").content.decode()
    customer_page = client.get(f"/tickets/customers/{customer.pk}/").content.decode()
    assert f'href="/tickets/new/?customer={customer.pk}"' in customer_page


def test_starting_from_another_merchants_customer_is_not_found(acme_email, agent_li, tenant_globex):
    with tenancy.activate(tenant_globex):
        stranger = CustomerFactory(email="li.wei@example.cn")
    assert login(agent_li).get(f"/tickets/new/?customer={stranger.pk}").status_code == 404


def test_bad_new_conversations_are_form_errors_and_write_nothing(
    acme_email, agent_li, tenant_globex
):
    with tenancy.activate(tenant_globex):
        from channels_in.models import ChannelAccount, Mailbox

        theirs = ChannelAccount.objects.create(kind="email", name="Globex support")
        Mailbox.objects.create(account=theirs, address="help@globex.example")
    client = login(agent_li)
    good = {
        "account": acme_email.pk,
        "to": "new.customer@example.cn",
        "subject": "您的订单已发货",
        "text": "您好，您的订单已发货。",
        "status": "pending",
    }
    cases = [
        ({"to": "not an address"}, "is not an email address"),
        ({"subject": "   "}, "This field is required."),
        ({"text": ""}, "This field is required."),
        ({"cc": "boss@"}, "boss@ is not an email address"),
        ({"status": "closed"}, "Select a valid choice."),
        ({"account": theirs.pk}, "Select a valid choice."),
        ({"account": "x"}, "Select a valid choice."),
    ]
    for change, error in cases:
        response = client.post("/tickets/new/", {**good, **change})
        assert response.status_code == 400, change
        page = response.content.decode()
        assert error in page, change
        assert "您好，您的订单已发货。" in page or change == {"text": ""}
    with tenancy.activate(acme_email.tenant):
        assert not Ticket.objects.exists()
        assert not Customer.objects.filter(identities__value="new.customer@example.cn").exists()


def test_an_inactive_or_foreign_channel_is_refused_by_the_service(
    acme_email, agent_li, tenant_globex
):
    with tenancy.activate(tenant_globex):
        from channels_in.models import ChannelAccount

        theirs = ChannelAccount.objects.create(kind="email", name="Globex support")
    with tenancy.activate(acme_email.tenant):
        args = {"to": "a@example.cn", "subject": "Hi", "text": "Hello"}
        with pytest.raises(BadInput, match="Choose one of this merchant's email channels"):
            start_conversation(acting_agent=acting(agent_li), account=theirs, **args)
        acme_email.is_active = False
        acme_email.save()
        with pytest.raises(BadInput, match="is not active"):
            start_conversation(acting_agent=acting(agent_li), account=acme_email, **args)
        assert not Ticket.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_new_conversation_opens_a_ticket_for_its_writer_and_is_delivered(
    mailbox_on_smtp,  # noqa: F811
    smtp_server,  # noqa: F811
    agent_li,
    tenant_acme,
    monkeypatch,
):
    inbox, _ = smtp_server
    published: list[str] = []
    original = realtime.publish_after_commit

    def recording(tenant_id, event, *args, **kwargs):  # type: ignore[no-untyped-def]
        published.append(event)
        return original(tenant_id, event, *args, **kwargs)

    monkeypatch.setattr(realtime, "publish_after_commit", recording)
    with tenancy.activate(tenant_acme):
        known = CustomerFactory(name="李伟", email="li.wei@example.cn")

    response = login(agent_li).post(
        "/tickets/new/",
        {
            "account": mailbox_on_smtp.account.pk,
            "to": "LI.WEI@example.cn",
            "cc": "wife@example.cn",
            "bcc": "audit@acme.example",
            "subject": "您的订单已发货",
            "text": "您好，您的订单已发货，单号 SF1234567890。",
            "status": "pending",
            "attachments": _files(("发货单.png", PNG)),
        },
    )
    with tenancy.activate(tenant_acme):
        ticket = Ticket.objects.get()
        assert response.status_code == 302
        assert response["Location"] == f"/tickets/{ticket.number}/?sent=new"
        assert ticket.customer == known  # found by their address, not a second customer
        assert ticket.assignee == agent_li
        assert ticket.status == "pending"  # as chosen, once sent
        message = ticket.messages.get()
        assert (message.direction, message.delivery_state) == ("outbound", "sent")
        assert [a.filename for a in message.attachments.all()] == ["发货单.png"]
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {
            AuditKind.TICKET_OPENED,
            AuditKind.TICKET_ASSIGNED,
            AuditKind.MESSAGE_REPLY_QUEUED,
        } <= actions
    assert "ticket.created" in published and "message.sent" in published

    recipients, content, sent = _sent(inbox)
    assert sorted(recipients) == ["audit@acme.example", "li.wei@example.cn", "wife@example.cn"]
    assert sent["Subject"] == f"您的订单已发货 [#{ticket.number}]"  # no "Re:": it starts here
    assert sent["Cc"] == "wife@example.cn" and b"audit@acme.example" not in content
    assert "wrote:" not in sent.get_body(("plain",)).get_content()  # nothing to quote
    assert [a.get_filename() for a in sent.iter_attachments()] == ["发货单.png"]

    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "您的订单已发货，单号 SF1234567890。" in page


def test_a_new_conversation_to_a_new_address_creates_the_customer(acme_email, agent_li):
    with tenancy.activate(acme_email.tenant):
        message = start_conversation(
            acting_agent=acting(agent_li),
            account=acme_email,
            to="Zhang.San@Example.cn",
            subject="回访",
            text="您好，想了解一下您对新冰箱的使用感受。",
            status="solved",
        )
        customer = message.ticket.customer
        assert customer.primary_email == "zhang.san@example.cn"
        assert message.metadata["to"] == "zhang.san@example.cn"
        assert message.subject == f"回访 [#{message.ticket.number}]"
        assert message.ticket.number is not None
        assert message.then_status == "solved"


def test_a_reply_held_back_as_stale_keeps_its_copies_and_asks_for_the_files_again(
    acme_email, agent_li, supervisor_wang
):
    ticket = _email_ticket(acme_email)
    client = login(agent_li)
    seen = re.search(
        r'name="seen" value="(\d+)"', client.get(f"/tickets/{ticket.number}/").content.decode()
    ).group(1)
    services.reply_to_customer(acting_agent=acting(supervisor_wang), ticket=ticket, text="已处理")
    response = client.post(
        f"/tickets/{ticket.number}/reply/",
        {
            "text": "请看照片",
            "seen": seen,
            "cc": "wife@example.cn",
            "bcc": "audit@acme.example",
            "attachments": _files(("照片.png", PNG)),
        },
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "Your files were not sent either: choose them again before sending." in page
    assert 'name="cc" value="wife@example.cn"' in page
    assert 'name="bcc" value="audit@acme.example"' in page
    assert not Attachment.objects.exists()


def test_only_the_composers_pages_may_post_large_bodies(settings):
    from helpdesk.asgi_limits import body_limit_for

    for path in ("/tickets/12/reply/", "/tickets/12/note/", "/tickets/new/"):
        assert body_limit_for(path) == settings.HELPDESK_UPLOAD_MAX_BYTES
    for path in ("/tickets/12/status/", "/tickets/new/x/", "/login/", "/tickets/12/reply/x/"):
        assert body_limit_for(path) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
