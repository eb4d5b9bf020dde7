"""bench/generate.py at a tiny scale: rows for the bench merchants only, written through
row-level security, and a second run that adds nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench.generate import Options, generate
from escalation.models import Escalation, Remedy
from helpdesk import tenancy
from helpdesk.models import Tenant
from helpdesk.permissions import SYSTEM
from tickets.models import Customer, Message, Order, Ticket
from tickets.services import open_ticket

TINY = Options(tickets=800, tenant="bench-tiny", tenants=3, workers=1, batch=200, analyze=False)
TINY_SIZES = [400, 267, 133]  # the first holds half, the others 2/3 and 1/3 of the rest


def visible_tickets() -> int:
    """Tickets the database lets the active merchant see, with no filter of our own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_ticket")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_it_fills_the_bench_merchant_and_a_second_run_adds_nothing(tenant_globex: Tenant) -> None:
    first = generate(TINY)

    assert first["tickets"] == 400
    assert first["tickets_created"] == sum(TINY_SIZES)
    for slug, size in zip(["bench-tiny", "bench-tiny-2", "bench-tiny-3"], TINY_SIZES, strict=True):
        with tenancy.activate(Tenant.objects.get(slug=slug)):
            assert visible_tickets() == size  # the other merchants' tickets are not theirs
    bench = Tenant.objects.get(slug="bench-tiny")
    with tenancy.activate(bench):
        numbers = sorted(Ticket.objects.values_list("number", flat=True))
        assert numbers == list(range(1, 401))
        assert Customer.objects.count() == 120  # 0.3 a ticket
        assert Order.objects.filter(lines__isnull=False).distinct().count() == Order.objects.count()
        inbound = Message.objects.filter(direction=Message.Direction.INBOUND).count()
        # Every ticket's first message, and a second exchange on about half the answered ones.
        assert 400 + 100 < inbound < 400 + 300
        assert 2.5 < Message.objects.count() / 400 < 3.5
        oldest = Ticket.objects.order_by("created_at").first().created_at
        assert timezone.now() - oldest > timedelta(days=700)  # two years of history
        email = Message.objects.filter(channel="email", direction=Message.Direction.INBOUND)
        assert not email.filter(external_id="").exists()  # real mail has a Message-ID
        escalated = Ticket.objects.filter(escalated_at__isnull=False)
        assert escalated.exists()
        assert set(escalated.values_list("pk", flat=True)) == set(
            Escalation.objects.values_list("ticket_id", flat=True)
        )
        assert Remedy.objects.exists()
        counts = (Ticket.objects.count(), Message.objects.count(), Remedy.objects.count())

    with tenancy.activate(tenant_globex):
        assert visible_tickets() == 0
        assert not Customer.objects.exists()

    second = generate(TINY)

    assert second["tickets_created"] == 0
    assert second["rows_written"] == 0
    with tenancy.activate(bench):
        assert (Ticket.objects.count(), Message.objects.count(), Remedy.objects.count()) == counts


@pytest.mark.django_db
def test_the_app_numbers_the_next_ticket_after_the_generated_ones() -> None:
    generate(Options(tickets=30, tenant="bench-next", workers=1, batch=30, analyze=False))

    bench = Tenant.objects.get(slug="bench-next")
    with tenancy.activate(bench):
        # Ids came from the tables' sequences, so the app's own inserts do not collide.
        customer = Customer.objects.create(name="王芳")
        ticket = open_ticket(
            acting_agent=SYSTEM, customer=customer, subject="到货破损", channel="email"
        )
    assert ticket.number == 31


@pytest.mark.django_db
def test_fresh_deletes_the_merchants_rows_before_writing_them_again() -> None:
    options = Options(tickets=20, tenant="bench-fresh", workers=1, batch=20, analyze=False)
    generate(options)

    again = generate(Options(**{**options.__dict__, "fresh": True}))

    assert again["tickets_created"] == 20
    with tenancy.activate(Tenant.objects.get(slug="bench-fresh")):
        assert Ticket.objects.count() == 20
        assert Customer.objects.count() == 6
