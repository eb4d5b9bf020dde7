"""Routing under real concurrency on PostgreSQL: conversations arriving at the same moment, each
through the signed JSON message API on its own connection, are never given twice and never put
an agent above their capacity; what is left waits and is handed out as agents free up."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from helpdesk import tenancy
from tests.conftest import acting
from tests.escalation.test_concurrency import in_threads
from tests.tickets.test_routing import arrive, solve, team
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks"),
]

AGENTS = 5
CAPACITY = 3
ARRIVALS = 50


def loads(tenant) -> Counter[str]:
    with tenancy.activate(tenant):
        return Counter(
            Ticket.objects.filter(assignee__isnull=False, status__in=["new", "open"]).values_list(
                "assignee__username", flat=True
            )
        )


def test_fifty_conversations_at_once_for_five_agents_of_three_each(tenant_acme, acme_api, settings):
    settings.HELPDESK_INBOUND_RATE = "10000/m"
    _group, agents = team(tenant_acme, [f"a{i}" for i in range(AGENTS)], chats=CAPACITY)

    assert in_threads(ARRIVALS, lambda i: arrive(acme_api, i)) == []

    with tenancy.activate(tenant_acme):
        assert Ticket.objects.count() == ARRIVALS
        assigned = Ticket.objects.filter(assignee__isnull=False)
        waiting = Ticket.objects.filter(assignee__isnull=True)
        assert assigned.count() == AGENTS * CAPACITY
        assert waiting.count() == ARRIVALS - AGENTS * CAPACITY == 35
        assert not waiting.filter(queued_at__isnull=True).exists()  # all 35 queued
        # Nobody was given a conversation twice: one automatic assignment per assigned ticket.
        given = Counter(
            AuditEvent.objects.filter(action=AuditKind.TICKET_AUTO_ASSIGNED).values_list(
                "object_id", flat=True
            )
        )
        assert sorted(given) == sorted(str(pk) for pk in assigned.values_list("pk", flat=True))
        assert set(given.values()) == {1}
    assert set(loads(tenant_acme).values()) == {CAPACITY}

    # Every agent solves their three at the same moment: the queue refills them, still at most
    # three each. (Hand-outs running at the same moment skip a ticket another one holds, so the
    # order across them is close to, not exactly, oldest first; one at a time it is exact.)
    with tenancy.activate(tenant_acme):
        was_waiting = set(waiting.values_list("pk", flat=True))
        theirs = {
            agent.pk: list(Ticket.objects.filter(assignee=agent).order_by("pk")) for agent in agents
        }

    def solve_all(i: int) -> None:
        for ticket in theirs[agents[i].pk]:
            solve(tenant_acme, agents[i], ticket)

    assert in_threads(AGENTS, solve_all) == []
    assert set(loads(tenant_acme).values()) == {CAPACITY}
    with tenancy.activate(tenant_acme):
        now_assigned = set(
            Ticket.objects.filter(assignee__isnull=False, status="new").values_list("pk", flat=True)
        )
        assert len(now_assigned) == AGENTS * CAPACITY and now_assigned <= was_waiting
        assert Ticket.objects.filter(assignee__isnull=True, queued_at__isnull=False).count() == 20


def test_arrivals_while_agents_come_online_never_overfill_anyone(tenant_acme, acme_api, settings):
    """Agents going online hand out the queue while new conversations arrive: both paths claim
    seats, and capacities still hold."""
    from tickets import presence

    settings.HELPDESK_INBOUND_RATE = "10000/m"
    _group, agents = team(tenant_acme, [f"b{i}" for i in range(AGENTS)], chats=CAPACITY)
    with tenancy.activate(tenant_acme):
        from tickets.models import AgentPresence

        AgentPresence.objects.update(status="away", chosen_status="away")
    for n in range(20):
        arrive(acme_api, 1000 + n)  # all wait: nobody is online

    def work(i: int) -> None:
        if i < AGENTS:
            with tenancy.activate(tenant_acme):
                presence.set_presence(acting_agent=acting(agents[i], tenant_acme), status="online")
        else:
            arrive(acme_api, i)

    assert in_threads(AGENTS + 20, work) == []
    counts = loads(tenant_acme)
    assert max(counts.values()) <= CAPACITY
    assert sum(counts.values()) == AGENTS * CAPACITY  # 40 arrived; every seat is taken
