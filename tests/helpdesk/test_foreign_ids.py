"""Every page and endpoint that takes an id answers 404 for another merchant's id."""

from __future__ import annotations

import pytest

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.channels_in.mails import customer_mail
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Attachment, Message, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex_world(tenant_globex, django_capture_on_commit_callbacks):
    """Globex has tickets #1 and #2, a failed inbound message, a paused channel, an attachment
    and a failed reply; Acme has only ticket #1."""
    from django.core.files.base import ContentFile

    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="email", name="Globex", paused=True)
        Mailbox.objects.create(account=account, address="help@globex.example")
        services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject="g1", channel="email"
        )
        with django_capture_on_commit_callbacks(execute=True):
            pipeline.receive(
                account=account, envelope=Envelope.of(customer_mail()), source="webhook"
            )
        ticket = Ticket.objects.get(number=2)
        message = ticket.messages.get()
        attachment = Attachment(
            message=message, filename="x.pdf", content_type="application/pdf", size=1
        )
        attachment.file.save("x.pdf", ContentFile(b"x"), save=False)
        attachment.save()
        reply = Message.objects.create(
            ticket=ticket,
            direction="outbound",
            channel="email",
            body_text="r",
            delivery_state="failed",
            channel_account=account,
            metadata={"to": "a@b.c"},
        )
        raw = RawInbound.objects.create(
            account=account,
            external_id="bad",
            source="webhook",
            payload=b"x",
            payload_sha256="0",
            state="failed",
            error="boom",
        )
    return {
        "ticket": ticket,
        "attachment": attachment,
        "reply": reply,
        "raw": raw,
        "account": account,
    }


def test_another_merchants_ids_are_404_on_every_page(globex_world, tenant_acme, admin_zhao):
    with tenancy.activate(tenant_acme):
        services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject="a1", channel="email"
        )
    n = globex_world["ticket"].number
    assert n == 2
    client = login(admin_zhao)
    gets = [
        f"/tickets/{n}/",
        f"/tickets/attachments/{globex_world['attachment'].pk}/",
        f"/inbound/log/{globex_world['raw'].pk}/",
        f"/api/v1/tickets/{n}/",
    ]
    posts = [
        (f"/tickets/{n}/status/", {"status": "solved"}),
        (f"/tickets/{n}/note/", {"text": "planted"}),
        (f"/tickets/{n}/reply/", {"text": "planted"}),
        (f"/tickets/{n}/messages/{globex_world['reply'].pk}/resend/", {}),
        (f"/inbound/log/{globex_world['raw'].pk}/retry/", {}),
        (f"/inbound/channels/{globex_world['account'].pk}/resume/", {}),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    with tenancy.activate(globex_world["ticket"].tenant):
        ticket = Ticket.objects.get(number=n)
        assert ticket.status == "new"
        assert ticket.messages.count() == 2  # nothing planted
        account = ChannelAccount.objects.get()
        assert account.paused
        assert RawInbound.objects.get(external_id="bad").state == "failed"
