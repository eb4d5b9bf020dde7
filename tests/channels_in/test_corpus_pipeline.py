"""Every real-world mail of the corpus through the real pipeline on the real database."""

from __future__ import annotations

import pytest

from channels_in import pipeline
from channels_in.base import AdapterError, Envelope
from channels_in.mail import parse_mail
from channels_in.models import RawInbound
from tests.conftest import acting
from tests.corpus import CorpusMail, collapse, corpus_mails, first_line
from tickets.models import Message

MAILS = corpus_mails()

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mail", MAILS, ids=[mail.id for mail in MAILS])
def test_corpus_mail_becomes_a_message_on_a_ticket_or_is_recognised_as_automated(
    mail: CorpusMail, acme_email, admin_zhao, django_capture_on_commit_callbacks
) -> None:
    expected = mail.expected
    if expected is not None and expected.rejected:
        # Not a mail at all (no header block): the sender is told why, nothing half-stored.
        with pytest.raises(AdapterError, match="not an email message"):
            pipeline.receive(account=acme_email, envelope=Envelope.of(mail.raw), source="import")
        assert RawInbound.objects.count() == 0
        return

    with django_capture_on_commit_callbacks(execute=True):
        raw, created = pipeline.receive(
            account=acme_email, envelope=Envelope.of(mail.raw), source="import"
        )
    assert created
    raw.refresh_from_db()
    assert bytes(raw.payload) == mail.raw  # kept exactly as received
    if raw.state == "failed" and "no sender address" in raw.error:
        # No address to answer anywhere in the headers: never an unanswerable ticket on its own,
        # but kept for an admin, who can file it by hand.
        assert parse_mail(mail.raw).sender_value == ""
        assert expected is None or not expected.from_email
        filed = pipeline.file_inbound_anyway(acting_agent=acting(admin_zhao), raw=raw)
        assert filed.state == "processed" and filed.ticket.number is not None
        return
    assert raw.state in {"processed", "ignored"}, raw.error

    if raw.state == "ignored":
        assert expected is None or expected.automated is not False, raw.note
        return
    assert expected is None or expected.automated is not True
    message = Message.objects.select_related("ticket", "author_customer").get()
    assert raw.message == message and raw.ticket == message.ticket
    if expected is None:
        return
    if expected.from_email:
        assert message.metadata["from"] == expected.from_email.lower()
        assert (
            message.author_customer.identities.get(kind="email").value
            == expected.from_email.lower()
        )
    if expected.subject:
        assert message.ticket.subject == (collapse(expected.subject)[:255] or "(no subject)")
    if expected.subject_prefix:
        assert message.ticket.subject.startswith(expected.subject_prefix)
    if expected.first_body_line is not None:
        assert first_line(message.body_text) == expected.first_body_line
    if expected.body_contains is not None:
        assert collapse(expected.body_contains) in collapse(message.full_text)
    for attachment in message.attachments.all():
        assert attachment.size == attachment.file.size
