"""The pipeline under real parallel connections on PostgreSQL: bursts from one customer end on
one ticket, slow work never holds the merchant's ticket counter, a claimed payload is skipped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.db import connection, connections, transaction

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tickets import services
from tickets.models import Attachment, Message, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks"),
]


def in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` in ``count`` threads started together, each on its own connection."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_twenty_messages_from_one_new_customer_processed_in_parallel_give_one_ticket(
    acme_email, tenant_acme
):
    with tenancy.activate(tenant_acme):
        raw_ids = [
            pipeline.store_raw(
                account=acme_email,
                envelope=Envelope.of(
                    customer_mail(
                        sender="新客户 <burst@example.cn>", subject=f"第{i}条", body=f"消息 {i}"
                    )
                ),
                source="webhook",
            )[0].pk
            for i in range(20)
        ]

    def process(i: int) -> None:
        with tenancy.activate(tenant_acme):
            pipeline.process_raw(raw_ids[i])

    assert in_threads(20, process) == []
    with tenancy.activate(tenant_acme):
        assert set(RawInbound.objects.values_list("state", flat=True)) == {"processed"}
        ticket = Ticket.objects.get()
        assert ticket.number == 1
        assert ticket.messages.count() == 20
        assert ticket.customer.identities.get().value == "burst@example.cn"


def test_slow_attachment_writes_do_not_hold_the_merchants_ticket_counter(
    acme_email, tenant_acme, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    with_file = EmailMessage()
    with_file["From"] = "slow@example.cn"
    with_file["To"] = "support@acme.example"
    with_file["Subject"] = "发票扫描件"
    with_file["Message-ID"] = make_msgid()
    with_file.set_content("见附件")
    with_file.add_attachment(b"%PDF-1.4" + b"0" * 50_000, "application", "pdf", filename="a.pdf")
    with tenancy.activate(tenant_acme):
        slow = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(with_file.as_bytes()), source="webhook"
        )[0]
        quick = pipeline.store_raw(
            account=acme_email,
            envelope=Envelope.of(customer_mail(sender="quick@example.cn", subject="快")),
            source="webhook",
        )[0]

    writing = threading.Event()
    release = threading.Event()
    real_write = services.AttachmentFiles.write

    def slow_write(self, attachment, content):  # the disk or object store is slow today
        writing.set()
        assert release.wait(timeout=60)
        return real_write(self, attachment, content)

    quick_done = threading.Event()

    def work(i: int) -> None:
        with tenancy.activate(tenant_acme):
            if i == 0:
                pipeline.process_raw(slow.pk)
            else:
                assert writing.wait(timeout=30)
                pipeline.process_raw(quick.pk)  # would wait on the counter if it were held
                quick_done.set()
                release.set()

    from unittest import mock

    with mock.patch.object(services.AttachmentFiles, "write", slow_write):
        errors = in_threads(2, work)
    assert errors == []
    assert quick_done.is_set()
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(subject="快").number == 1
        assert Ticket.objects.get(subject="发票扫描件").number == 2
        assert Attachment.objects.get().filename == "a.pdf"


def test_attachment_files_of_a_rolled_back_message_are_removed(
    acme_email, tenant_acme, settings, tmp_path
):
    from unittest import mock

    settings.MEDIA_ROOT = tmp_path
    mail = EmailMessage()
    mail["From"] = "files@example.cn"
    mail["Subject"] = "照片"
    mail["Message-ID"] = make_msgid()
    mail.set_content("看照片")
    mail.add_attachment(b"\x89PNG\r\n\x1a\n" + b"1" * 2000, "image", "png", filename="p.png")
    with tenancy.activate(tenant_acme):
        raw = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(mail.as_bytes()), source="webhook"
        )[0]
        with (
            mock.patch.object(services, "find_thread", side_effect=ConnectionError("db blip")),
            pytest.raises(ConnectionError),
        ):
            pipeline.process_raw(raw.pk)
        assert Message.objects.count() == 0
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no orphaned files
        raw.refresh_from_db()
        assert raw.state == "failed" and "db blip" in raw.error
        assert pipeline.process_raw(raw.pk).state == "processed"  # the retry succeeds
        stored = Attachment.objects.get()
        assert stored.file.read() == b"\x89PNG\r\n\x1a\n" + b"1" * 2000


def test_a_payload_a_worker_holds_is_skipped_by_other_workers_and_the_sweep(
    acme_email, tenant_acme
):
    with tenancy.activate(tenant_acme):
        raw = pipeline.store_raw(
            account=acme_email, envelope=Envelope.of(customer_mail()), source="webhook"
        )[0]
        RawInbound.objects.filter(pk=raw.pk).update(queued_at=None)

    held = threading.Event()
    done = threading.Event()

    def hold(i: int) -> None:
        with tenancy.activate(tenant_acme), transaction.atomic():
            RawInbound.objects.select_for_update().get(pk=raw.pk)  # a worker mid-way
            held.set()
            assert done.wait(timeout=30)

    def other(i: int) -> None:
        assert held.wait(timeout=30)
        try:
            with tenancy.activate(tenant_acme):
                assert pipeline.process_raw(raw.pk) is None
                with transaction.atomic():
                    assert pipeline.stale_inbound() == []
        finally:
            done.set()

    def work(i: int) -> None:
        (hold if i == 0 else other)(i)

    assert in_threads(2, work) == []
    with tenancy.activate(tenant_acme), transaction.atomic():
        # Once the holder is gone (its connection closed), the sweep hands it out again.
        assert pipeline.stale_inbound() == [raw.pk]
