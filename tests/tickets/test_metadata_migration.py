"""The data migration that moved routing data out of Message.metadata into real columns."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection

from channels_in.models import ChannelAccount
from helpdesk import tenancy
from tests.factories import CustomerFactory
from tickets.models import Message, Ticket

migration = importlib.import_module("tickets.migrations.0005_message_metadata_to_columns")

pytestmark = pytest.mark.django_db


def old_style_reply(ticket: Ticket, metadata: dict) -> Message:
    return Message.objects.create(
        ticket=ticket, direction="outbound", channel="email", body_text="r", metadata=metadata
    )


def test_metadata_keys_become_columns_and_leave_the_json(acme_email, tenant_globex):
    with tenancy.activate(acme_email.tenant):
        customer = CustomerFactory()
        ticket = Ticket.objects.create(number=1, subject="s", channel="email", customer=customer)
        reply = old_style_reply(
            ticket,
            {
                "account_id": acme_email.pk,
                "conversation_id": "c-77",
                "then_status": "solved",
                "status_when_written": "open",
                "to": "li.wei@example.cn",
                "references": ["a@b"],
            },
        )
    with tenancy.activate(tenant_globex):
        # Another merchant's channel id in the JSON cannot become a reference across merchants.
        foreign = ChannelAccount.objects.create(kind="email", name="Globex")
    with tenancy.activate(acme_email.tenant):
        stray = old_style_reply(ticket, {"account_id": foreign.pk, "to": "x@example.cn"})
        untouched = old_style_reply(ticket, {"to": "y@example.cn"})

    # As migrate runs it: per merchant, the merchant's rows visible through row-level security.
    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.forwards(apps, editor)
    with tenancy.activate(acme_email.tenant):
        reply.refresh_from_db()
        stray.refresh_from_db()
        untouched.refresh_from_db()

    assert reply.channel_account_id == acme_email.pk
    assert (reply.conversation_id, reply.then_status, reply.status_when_written) == (
        "c-77",
        "solved",
        "open",
    )
    assert reply.metadata == {"to": "li.wei@example.cn", "references": ["a@b"]}
    assert stray.channel_account_id is None and "account_id" not in stray.metadata
    assert untouched.metadata == {"to": "y@example.cn"}

    migration.backwards(apps, editor)
    with tenancy.activate(acme_email.tenant):
        reply.refresh_from_db()
    assert reply.metadata["account_id"] == acme_email.pk
    assert reply.metadata["then_status"] == "solved"
