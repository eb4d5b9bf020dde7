"""The pipeline's SQL budget: every statement of store_raw + process_raw, as Django captures
them (COMMIT and savepoints included; the tenant's set_config rides in the statement that needs
it, helpdesk.db), stays within what it takes today, so a change that adds round trips to every
inbound message fails here first.

Run without a test transaction around them (``transaction=True``) so the pipeline opens and
commits its own transactions, as a worker does.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tickets import services
from tickets.models import Attachment, AuditEvent, Group, Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL's statements"),
]

# A customer naming an order number, as most mail does: the order lookup is part of the budget.
SUBJECT = "Where is my order SO202612345?"
BODY = "Hello, my order SO202612345 has not arrived yet."

# A new customer's first mail (issue 19 took it from 21 to 9):
#   INSERT ... ON CONFLICT the raw payload (no lookup first: a redelivery returns nothing);
#   read and parse it, and write its attachment files, before the transaction; BEGIN;
#   claim it (FOR UPDATE SKIP LOCKED), with whether its message was filed already;
#   the sender's identities with the customer locked, blocks on the sender and orders named;
#   the new customer with their identity and whether the sender is blocked (one CTE);
#   the merchant's groups with the priority's service-level target (routing, clocks);
#   the ticket numbered by the merchant's counter, its message, attachments, audit rows and
#   the payload's state (one CTE: the counter is locked from there to COMMIT); COMMIT.
# A new customer has no tickets and no orders: those lookups are skipped. A reply looks up the
# message it answers instead of the customer insert and the groups, and writes its message with
# the ticket's update in one statement. Offering the ticket to an agent is a task of its own
# (tests/tickets/test_routing.py holds its budget), kept out of the count here.
NEW_CUSTOMER_FIRST_MAIL_BUDGET = 9
KNOWN_CUSTOMER_REPLY_BUDGET = 8


@pytest.fixture(autouse=True)
def offers_counted_elsewhere(monkeypatch) -> list[tuple]:
    """The after-commit offer of a new ticket, and the escalation triggers' look at the
    message (tests/escalation/test_triggers.py holds its budget), are recorded, not run inline
    by eager Celery."""
    from escalation import trigger_tasks
    from tickets import tasks

    offered: list[tuple] = []
    monkeypatch.setattr(tasks.offer_ticket, "delay_on_commit", lambda *args: offered.append(args))
    monkeypatch.setattr(
        trigger_tasks.inbound_triggers,
        "delay_on_commit",
        lambda *args, **kwargs: offered.append(args),
    )
    return offered


def ingest(account, payload: bytes) -> RawInbound:
    raw, _ = pipeline.store_raw(account=account, envelope=Envelope.of(payload), source="webhook")
    return pipeline.process_raw(raw.pk)


@pytest.fixture
def acme_support_group(in_acme) -> Group:
    return Group.objects.create(name="Support", is_default=True)


def test_a_new_customers_first_mail_takes_at_most_its_statement_budget(
    acme_email, acme_support_group, django_assert_max_num_queries
):
    payload = customer_mail(
        sender="新客户 <new@example.cn>", subject=SUBJECT, body=BODY, message_id="<a@example.cn>"
    )
    with django_assert_max_num_queries(NEW_CUSTOMER_FIRST_MAIL_BUDGET):
        raw = ingest(acme_email, payload)
    assert raw.state == RawInbound.State.PROCESSED
    ticket = Ticket.objects.get()
    assert (ticket.number, ticket.group, ticket.customer.name) == (1, acme_support_group, "新客户")
    assert ticket.last_customer_message_at is not None
    assert AuditEvent.objects.filter(action="ticket.opened", object_id=str(ticket.pk)).exists()


def test_a_known_customers_reply_threads_within_its_statement_budget(
    acme_email, acme_support_group, django_assert_max_num_queries
):
    first = ingest(
        acme_email,
        customer_mail(
            sender="新客户 <new@example.cn>",
            subject=SUBJECT,
            body=BODY,
            message_id="<a@example.cn>",
        ),
    )
    reply = customer_mail(
        sender="新客户 <new@example.cn>",
        subject=f"Re: {SUBJECT}",
        body="Any news on this?",
        message_id="<b@example.cn>",
        in_reply_to="<a@example.cn>",
    )
    with django_assert_max_num_queries(KNOWN_CUSTOMER_REPLY_BUDGET):
        raw = ingest(acme_email, reply)
    assert raw.state == RawInbound.State.PROCESSED
    assert raw.ticket == first.ticket
    assert raw.ticket.messages.count() == 2


def test_the_tenant_setting_is_among_the_captured_statements(
    acme_email, tenant_globex, acme_support_group
):
    with tenancy.activate(tenant_globex):
        Ticket.objects.exists()  # the last statement carried globex
    payload = customer_mail(sender="新客户 <new@example.cn>", message_id="<a@example.cn>")
    with CaptureQueriesContext(connection) as captured:
        ingest(acme_email, payload)
    assert any("set_config('app.tenant_id'" in query["sql"] for query in captured)


def test_a_known_customers_new_ticket_takes_at_most_the_new_customers_budget(
    acme_email, acme_support_group, django_assert_max_num_queries
):
    ingest(acme_email, customer_mail(sender="new@example.cn", subject="First", body="Hello"))
    Ticket.objects.update(status=Ticket.Status.SOLVED)
    payload = customer_mail(sender="new@example.cn", subject=SUBJECT, body=BODY)
    with django_assert_max_num_queries(NEW_CUSTOMER_FIRST_MAIL_BUDGET):
        raw = ingest(acme_email, payload)
    assert raw.state == RawInbound.State.PROCESSED
    assert raw.ticket.number == 2
    assert raw.ticket.customer == Ticket.objects.get(number=1).customer
    assert (
        AuditEvent.objects.filter(action="ticket.opened", object_id=str(raw.ticket.pk))
        .get()
        .changes["details"]["number"]
        == 2
    )


def test_a_redelivered_payload_is_one_statement_and_changes_nothing(
    acme_email, acme_support_group, django_assert_max_num_queries
):
    payload = customer_mail(sender="new@example.cn", message_id="<a@example.cn>")
    first = ingest(acme_email, payload)
    with django_assert_max_num_queries(2):
        again, created = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(payload), source="webhook"
        )
    assert (again.pk, created) == (first.pk, False)
    assert RawInbound.objects.count() == 1


def mail_with_a_file() -> bytes:
    mail = EmailMessage()
    mail["From"] = "files@example.cn"
    mail["To"] = "support@acme.example"
    mail["Subject"] = "照片"
    mail["Message-ID"] = make_msgid()
    mail.set_content("看照片")
    mail.add_attachment(b"\x89PNG\r\n\x1a\n" + b"1" * 2000, "image", "png", filename="p.png")
    return mail.as_bytes()


def test_attachment_files_are_written_before_the_filing_transaction(
    acme_email, acme_support_group, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    real_write = services.AttachmentFiles.write
    in_transaction: list[bool] = []

    def write(self, attachment, content):
        in_transaction.append(transaction.get_connection().in_atomic_block)
        return real_write(self, attachment, content)

    with mock.patch.object(services.AttachmentFiles, "write", write):
        raw = ingest(acme_email, mail_with_a_file())
    assert raw.state == RawInbound.State.PROCESSED
    assert in_transaction == [False]
    assert Attachment.objects.get().file.read().startswith(b"\x89PNG")


def test_a_failing_ingest_leaves_no_orphan_attachment_file(
    acme_email, acme_support_group, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    raw, _ = pipeline.store_raw(
        account=acme_email, envelope=Envelope.of(mail_with_a_file()), source="webhook"
    )
    # The last write of the filing transaction fails (the ticket's statement).
    with (
        mock.patch.object(services, "_open_ticket_with_message", side_effect=RuntimeError("oops")),
        pytest.raises(RuntimeError),
    ):
        pipeline.process_raw(raw.pk)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert Message.objects.count() == 0
    raw.refresh_from_db()
    assert raw.state == RawInbound.State.FAILED and "oops" in raw.error
    assert pipeline.process_raw(raw.pk).state == RawInbound.State.PROCESSED


def test_a_payload_another_worker_claimed_leaves_no_attachment_file(
    acme_email, acme_support_group, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    raw, _ = pipeline.store_raw(
        account=acme_email, envelope=Envelope.of(mail_with_a_file()), source="webhook"
    )
    with mock.patch.object(pipeline, "claim", return_value=None):
        assert pipeline.process_raw(raw.pk) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    raw.refresh_from_db()
    assert raw.state == RawInbound.State.RECEIVED


def test_the_merchants_ticket_counter_is_taken_in_the_last_write_before_commit(
    acme_email, acme_support_group
):
    """Workers filing new tickets of one merchant wait on its counter row only from the
    statement that takes the number (and writes everything else) to COMMIT."""
    payload = customer_mail(sender="新客户 <new@example.cn>", subject=SUBJECT, body=BODY)
    with CaptureQueriesContext(connection) as captured:
        ingest(acme_email, payload)
    statements = [query["sql"] for query in captured]
    taking = [n for n, sql in enumerate(statements) if "last_ticket_number + 1" in sql]
    assert len(taking) == 1
    assert 'UPDATE "channels_in_rawinbound"' in statements[taking[0]]
    assert statements[taking[0] + 1 :] == ["COMMIT"]
