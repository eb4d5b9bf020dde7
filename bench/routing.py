"""Routing benchmark: how fast arriving conversations are given to agents, and how the queue is
handed out when agents come online.

Run from the repository root: ``python bench/routing.py`` (``make bench-routing`` runs it on
PostgreSQL as the app's role). It creates a bench merchant with one least-loaded group of
``--agents`` online agents, opens ``--arrivals`` live conversations (not timed) and times
``tickets.assignment.offer_ticket`` for each: the claim a worker runs once a new conversation is
committed (lock the ticket, rank the group's online agents by load, lock the chosen agent's
seat, count their work, assign, audit). Three runs, each on fresh conversations:

1. one process offering one conversation at a time;
2. ``--workers`` forked processes offering at once, each on its own connection, as several
   Celery workers do;
3. the conversations wait (every agent away), then every agent comes online and one
   ``hand_out_queued`` gives out the whole queue.

Results go to stdout as ``name: value`` lines; see bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import Membership, Role, Tenant  # noqa: E402
from helpdesk.permissions import SYSTEM  # noqa: E402
from tickets import assignment, services  # noqa: E402
from tickets.models import (  # noqa: E402
    AgentPresence,
    Channel,
    Customer,
    Group,
    GroupMember,
    RoutingStrategy,
    Ticket,
)


def bench_team(slug: str, agents: int, capacity: int) -> tuple[Tenant, Group]:
    tenant = Tenant.objects.create(slug=slug, name=f"Bench {slug}")
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"{slug}-agent-{i}") for i in range(agents)
    )
    Membership.objects.bulk_create(
        Membership(tenant=tenant, user=user, role=Role.AGENT) for user in users
    )
    with tenancy.activate(tenant):
        group = Group.objects.create(
            name="Live chat", is_default=True, strategy=RoutingStrategy.LEAST_LOADED, sticky=False
        )
        GroupMember.objects.bulk_create(
            GroupMember(tenant=tenant, group=group, user=user, chat_capacity=capacity)
            for user in users
        )
        now = timezone.now()
        AgentPresence.objects.bulk_create(
            AgentPresence(tenant=tenant, user=user, status="online", last_heartbeat_at=now)
            for user in users
        )
    return tenant, group


def arrivals(group: Group, count: int, label: str) -> list[int]:
    """``count`` new live conversations waiting in ``group``, each opened in its own
    transaction as the pipeline opens them (not timed)."""
    ids = []
    for n in range(count):
        with transaction.atomic():
            customer = Customer.objects.create(name=f"{label} customer {n}")
            ticket = services.draft_ticket(
                customer=customer, subject=f"{label} {n}", channel=Channel.API, group=group
            )
            services.number_ticket(acting_agent=SYSTEM, ticket=ticket, routed_by="bench")
        ids.append(ticket.pk)
    return ids


def timed_offers(tenant: Tenant, ids: list[int]) -> list[float]:
    latencies = []
    with tenancy.activate(tenant):
        for ticket_id in ids:
            started = time.perf_counter()
            assignment.offer_ticket(ticket_id=ticket_id)
            latencies.append(time.perf_counter() - started)
    return latencies


def _offer_share(tenant: Tenant, ids: list[int], start: Any, results: Any) -> None:
    """One worker process: offers its share of the conversations, as a Celery worker would."""
    try:
        with tenancy.activate(tenant):
            connection.ensure_connection()  # connecting is not part of the measured time
            start.wait()
            results.put(timed_offers(tenant, ids))
    finally:
        connections.close_all()


def concurrent_offers(tenant: Tenant, ids: list[int], workers: int) -> tuple[list[float], float]:
    """Latencies and wall-clock time of ``workers`` forked processes offering ``ids`` at once,
    each its own share, on its own connection."""
    connections.close_all()  # a forked child must not share the parent's connection
    context = multiprocessing.get_context("fork")
    start = context.Barrier(workers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_offer_share, args=(tenant, ids[i::workers], start, results))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    started = time.perf_counter()
    latencies = [value for _ in processes for value in results.get(timeout=600)]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    if any(process.exitcode for process in processes):
        raise SystemExit("a worker process of the concurrent run died")
    return latencies, elapsed


def most_work(tenant: Tenant) -> int:
    with tenancy.activate(tenant):
        loads = (
            Ticket.objects.filter(assignee__isnull=False, status__in=assignment.ACTIVE_STATUSES)
            .values("assignee_id")
            .annotate(n=Count("pk"))
            .values_list("n", flat=True)
        )
        return max(loads, default=0)


def reset(tenant: Tenant) -> None:
    """Close every conversation so the next run starts with idle agents."""
    with tenancy.activate(tenant):
        Ticket.objects.update(status=Ticket.Status.CLOSED, queued_at=None)


def run(options: argparse.Namespace) -> dict[str, object]:
    slug = f"bench-routing-{time.strftime('%Y%m%d%H%M%S')}"
    capacity = max(1, -(-options.arrivals // options.agents))  # room for every arrival
    tenant, group = bench_team(slug, options.agents, capacity)
    results: dict[str, object] = {
        "bench_tenant": slug,
        "routing_arrivals": options.arrivals,
        "routing_agents": options.agents,
        "routing_capacity_per_agent": capacity,
    }
    with tenancy.activate(tenant):
        ids = arrivals(group, options.arrivals, "sequential")
    started = time.perf_counter()
    latencies = sorted(timed_offers(tenant, ids))
    elapsed = time.perf_counter() - started
    with tenancy.activate(tenant):
        assigned = Ticket.objects.filter(pk__in=ids, assignee__isnull=False).count()
    results |= {
        "sequential_assigned": assigned,
        "sequential_assignments_per_second": round(assigned / elapsed, 1),
        "sequential_latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "sequential_latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        "sequential_most_work_per_agent": most_work(tenant),
    }

    reset(tenant)
    with tenancy.activate(tenant):
        ids = arrivals(group, options.arrivals, "concurrent")
    latencies, elapsed = concurrent_offers(tenant, ids, options.workers)
    latencies.sort()
    with tenancy.activate(tenant):
        assigned = Ticket.objects.filter(pk__in=ids, assignee__isnull=False).count()
    results |= {
        "concurrent_workers": options.workers,
        "concurrent_assigned": assigned,
        "concurrent_assignments_per_second": round(assigned / elapsed, 1),
        "concurrent_latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "concurrent_latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        "concurrent_most_work_per_agent": most_work(tenant),
    }

    reset(tenant)
    with tenancy.activate(tenant):
        AgentPresence.objects.update(status="away")
        ids = arrivals(group, options.arrivals, "queued")
        AgentPresence.objects.update(status="online")
        started = time.perf_counter()
        given = assignment.hand_out_queued()
        elapsed = time.perf_counter() - started
    results |= {
        "hand_out_assigned": given,
        "hand_out_assignments_per_second": round(given / elapsed, 1),
        "hand_out_most_work_per_agent": most_work(tenant),
    }
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=1000, help="conversations per run")
    parser.add_argument("--agents", type=int, default=50, help="online agents in the group")
    parser.add_argument(
        "--workers", type=int, default=4, help="worker processes in the concurrent run"
    )
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.arrivals < 1 or options.agents < 1 or options.workers < 1:
        parser.error("--arrivals, --agents and --workers must be >= 1")
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
