from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Ticket


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_tickets_get_unique_gapless_numbers(tenant_acme, tenant_globex):
    with tenancy.activate(tenant_acme):
        customer = CustomerFactory()
    with tenancy.activate(tenant_globex):
        globex_customer = CustomerFactory()
        services.open_ticket(
            acting_agent=SYSTEM, customer=globex_customer, subject="g", channel="email"
        )

    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def open_one(i: int) -> None:
        try:
            with tenancy.activate(tenant_acme):
                barrier.wait(timeout=30)
                services.open_ticket(
                    acting_agent=SYSTEM, customer=customer, subject=f"t{i}", channel="chat"
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with tenancy.activate(tenant_acme):
        numbers = sorted(Ticket.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 21))
    with tenancy.activate(tenant_globex):
        assert list(Ticket.objects.values_list("number", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_a_rolled_back_ticket_gives_its_number_back(tenant_acme):
    from django.db import transaction

    with tenancy.activate(tenant_acme):
        customer = CustomerFactory()
        with pytest.raises(RuntimeError), transaction.atomic():
            services.open_ticket(
                acting_agent=SYSTEM, customer=customer, subject="lost", channel="email"
            )
            raise RuntimeError("payment provider down")
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject="kept", channel="email"
        )
    assert ticket.number == 1
