"""The pipeline's SQL budget: every statement of store_raw + process_raw, as Django captures
them (COMMIT and savepoints included; the tenant's set_config rides in the statement that needs
it, helpdesk.db), stays within what it takes today, so a change that adds round trips to every
inbound message fails here first.

Run without a test transaction around them (``transaction=True``) so the pipeline opens and
commits its own transactions, as a worker does.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tickets.models import AuditEvent, Group, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL's statements"),
]

# A customer naming an order number, as most mail does: the order lookup is part of the budget.
SUBJECT = "Where is my order SO202612345?"
BODY = "Hello, my order SO202612345 has not arrived yet."

# Routing added two to a new ticket: the merchant's groups (for skills and personas) and the
# service-level target of its priority. Offering the ticket to an agent is a task of its own
# (tests/tickets/test_routing.py holds its budget), kept out of the count here.
# Blocked senders (tickets.spam) added one to each: whether any of the sender's addresses is
# blocked, one indexed EXISTS.
NEW_CUSTOMER_FIRST_MAIL_BUDGET = 21
KNOWN_CUSTOMER_REPLY_BUDGET = 13


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
        trigger_tasks.inbound_triggers, "delay_on_commit", lambda *args: offered.append(args)
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
