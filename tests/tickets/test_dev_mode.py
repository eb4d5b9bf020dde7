"""Development mode (`make run`): replies go to a local outbox a developer can read, and the
demo data has what a newcomer needs (a default group per merchant, an operator login)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command

from helpdesk import tenancy
from helpdesk.models import Role, Tenant
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tests.make_run import make_run_manage
from tickets import services
from tickets.models import Group, GroupMember, Message, Ticket

ROOT = Path(__file__).resolve().parents[2]
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@pytest.fixture
def dev_mode(settings, tmp_path: Path) -> Path:
    """DEBUG on and mail written as files, as `make run` has it; the outbox folder."""
    outbox = tmp_path / "outbox"
    settings.DEBUG = True
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = outbox
    return outbox


@pytest.fixture
def demo_email_ticket(acme_mailbox) -> Ticket:
    """An email ticket as seed_demo makes them: no SMTP server on the mailbox, no raw mail."""
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="吸油烟机安装后噪音很大", channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=ticket.subject,
        body_text="我家的吸油烟机安装后噪音很大，请尽快处理。",
    )
    return ticket


@pytest.mark.django_db(transaction=True)
def test_in_development_a_reply_is_sent_into_the_outbox_and_shown_there(
    dev_mode, agent_li, tenant_acme, demo_email_ticket
):
    agent = login(agent_li)
    response = agent.post(
        f"/tickets/{demo_email_ticket.number}/reply/",
        {"text": "您好，师傅明天上门检查。", "status": "pending"},
        follow=True,
    )
    page = response.content.decode()
    assert "Reply sent." in page
    assert "Sent" in page and "Failed" not in page
    with tenancy.activate(tenant_acme):
        reply = Message.objects.get(direction="outbound")
        assert reply.delivery_state == "sent"
    assert len(list(dev_mode.glob("*.log"))) == 1

    outbox = agent.get("/dev/outbox/")
    assert outbox.status_code == 200
    shown = outbox.content.decode()
    assert reply.subject in shown
    assert "li.wei@example.cn" in shown
    assert "support@acme.example" in shown
    assert "师傅明天上门检查" in shown
    assert 'href="/dev/outbox/"' in page  # the nav links to it in development


def test_the_outbox_shows_the_newest_mail_first(dev_mode, agent_li):
    mail.EmailMessage("First mail", "one", "a@example.com", ["x@example.com"]).send()
    # A minute older: files written within the same clock tick would otherwise tie.
    (first_file,) = dev_mode.glob("*.log")
    an_earlier_time = first_file.stat().st_mtime - 60
    os.utime(first_file, (an_earlier_time, an_earlier_time))
    with mail.get_connection() as connection:  # one connection writes one file
        connection.send_messages(
            [
                mail.EmailMessage("Second mail", "two", "a@example.com", ["y@example.com"]),
                mail.EmailMessage("Third mail", "three", "a@example.com", ["z@example.com"]),
            ]
        )
    shown = login(agent_li).get("/dev/outbox/").content.decode()
    positions = [shown.index(subject) for subject in ("Third mail", "Second mail", "First mail")]
    assert positions == sorted(positions)


def test_the_outbox_says_when_nothing_was_sent(dev_mode, agent_li):
    shown = login(agent_li).get("/dev/outbox/").content.decode()
    assert "No mail has been sent yet." in shown
    in_chinese = login(agent_li, language="zh-hans").get("/dev/outbox/").content.decode()
    assert "还没有发出任何邮件。" in in_chinese and f"写入 {dev_mode}" in in_chinese


def test_the_outbox_asks_visitors_to_sign_in(dev_mode, client):
    response = client.get("/dev/outbox/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_the_outbox_does_not_exist_when_debug_is_off(settings, agent_li, client):
    settings.DEBUG = False
    agent = login(agent_li)
    assert agent.get("/dev/outbox/").status_code == 404
    assert client.get("/dev/outbox/").status_code == 404  # nor for a visitor
    assert "/dev/outbox/" not in agent.get("/tickets/").content.decode()


def mail_settings(extra_env: dict[str, str]) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "EMAIL_", "HELPDESK_DEV_"))
    }
    env.update({"DJANGO_SETTINGS_MODULE": "helpdesk.settings", **extra_env})
    code = "from django.conf import settings; print(settings.EMAIL_BACKEND)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_development_writes_mail_to_the_outbox_unless_a_mail_server_is_configured():
    assert mail_settings({"DJANGO_DEBUG": "true"}) == FILE_BACKEND
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    assert mail_settings({"DJANGO_DEBUG": "true", "EMAIL_HOST": "mail.example.com"}) == smtp
    assert mail_settings({"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "k" * 50}) == smtp


@pytest.mark.django_db
def test_seed_demo_gives_each_merchant_a_default_group_and_an_operator_idempotently(capsys):
    call_command("seed_demo")
    first_output = capsys.readouterr().out

    def counts() -> tuple[int, ...]:
        totals = [get_user_model().objects.count()]
        for tenant in Tenant.objects.order_by("slug"):
            with tenancy.activate(tenant):
                totals += [Group.objects.count(), GroupMember.objects.count()]
                totals += [Ticket.objects.count(), Message.objects.count()]
        return tuple(totals)

    before = counts()
    call_command("seed_demo")
    assert counts() == before
    output = capsys.readouterr().out

    for text in (first_output, output):
        assert "operator" in text and "helpdesk-demo" in text
        assert "售后 After-sales" in text and "Support" in text
    operator = get_user_model().objects.get(username="operator")
    assert operator.is_superuser and operator.check_password("helpdesk-demo")
    for tenant in Tenant.objects.filter(slug__in=["acme", "globex"]):
        with tenancy.activate(tenant):
            default = Group.objects.get(is_default=True)
            agents = set(
                tenant.memberships.filter(role=Role.AGENT).values_list("user__username", flat=True)
            )
            assert agents and set(default.members.values_list("username", flat=True)) == agents
            assert not Ticket.objects.filter(group__isnull=True).exists()


SQLITE_INGEST = """
from helpdesk import tenancy
from helpdesk.models import Tenant
from channels_in.base import Envelope
from channels_in.models import ChannelAccount
from channels_in.pipeline import process_raw, store_raw
from tickets.models import AuditEvent, Ticket

MAIL = (
    "From: =?utf-8?b?5byg5LiJ?= <zhang.san@example.cn>\\r\\nTo: support@acme.example\\r\\n"
    "Subject: {subject}\\r\\nMessage-ID: <{mid}@example.cn>\\r\\n{extra}"
    "Content-Type: multipart/mixed; boundary=XX\\r\\n\\r\\n--XX\\r\\n"
    "Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n订单 SO20261105 还没到\\r\\n--XX\\r\\n"
    "Content-Type: application/pdf\\r\\nContent-Disposition: attachment; filename=a.pdf\\r\\n"
    "Content-Transfer-Encoding: base64\\r\\n\\r\\nJVBERi0xLjQK\\r\\n--XX--\\r\\n"
)
with tenancy.activate(Tenant.objects.get(slug="acme")):
    account = ChannelAccount.objects.filter(kind="email").first()
    first = MAIL.format(subject="还没到货", mid="first", extra="").encode()
    reply = MAIL.format(
        subject="Re: 还没到货", mid="reply", extra="In-Reply-To: <first@example.cn>\\r\\n"
    ).encode()
    states = []
    for payload in (first, reply, reply):
        raw, _ = store_raw(account=account, envelope=Envelope.of(payload), source="webhook")
        states.append(str(process_raw(raw.pk).state if raw.state == "received" else raw.state))
    ticket = Ticket.objects.order_by("-pk").first()
    opened = AuditEvent.objects.get(
        action="ticket.opened", object_type="ticket", object_id=str(ticket.pk)
    )
    print(states, ticket.messages.count(), ticket.messages.first().attachments.count(),
          opened.changes["details"]["number"] == ticket.number)
"""


def test_make_run_on_sqlite_files_mail_into_tickets(tmp_path: Path):
    """`make run`'s SQLite database takes mail through the same pipeline: a new ticket with its
    file and audit row, a reply on it, a redelivery that changes nothing (PostgreSQL sends the
    pipeline's writes as one statement; SQLite runs them in turn)."""
    manage = make_run_manage(tmp_path)

    manage("migrate", "-v0")
    manage("seed_demo")
    out = manage("shell", "-c", SQLITE_INGEST).strip().splitlines()[-1]
    assert out == "['processed', 'processed', 'processed'] 2 1 True"
