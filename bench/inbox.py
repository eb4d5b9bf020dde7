"""Inbox benchmark: how long the agent's inbox, a deep page, searches and the ticket page take
for a merchant with a million tickets.

``python -m bench.inbox --tenant bench-1m`` (``make bench-inbox`` runs it on the
``helpdesk_bench`` database as the app's role, after ``make bench-data``). An agent and a
supervisor of the bench merchant (made by bench/generate.py) sign in with Django's test client;
each page is requested once to warm up, once counting its statements
and ``--runs`` times timed: the whole request, middleware, tenancy, every query and the template.
A page whose p95 passes ``--slow-ms`` gets the plan of its slowest statement on stderr.

Results go to stdout as ``name: value`` lines; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402
from django.apps import apps as django_apps  # noqa: E402

if not django_apps.ready:
    django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench.dashboard import ms, slowest_plan, timed  # noqa: E402
from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import Membership, Tenant  # noqa: E402
from helpdesk.permissions import ActingAgent, tickets_in_reach  # noqa: E402
from tickets import inbox  # noqa: E402
from tickets.models import Ticket  # noqa: E402


class StatementCounter:
    """A database execute wrapper that notes every statement sent (a request empties the
    connection's own query log when it starts, so CaptureQueriesContext cannot count one)."""

    def __init__(self, statements: list[str]) -> None:
        self.statements = statements

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.statements.append(sql)
        return execute(sql, params, many, context)


def client_for(username: str) -> Client:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise SystemExit(f"no user {username}: run bench.generate first")
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = "en"
    return client


def get(client: Client, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")


def measure(
    results: dict[str, object],
    name: str,
    call: Callable[[], Any],
    *,
    tenant: Tenant,
    label: str,
    runs: int,
    slow_ms: float,
) -> bool:
    """Time ``call`` (one request) ``runs`` times after a warm-up and put ``<name>_queries``,
    ``_p50_ms`` and ``_p95_ms`` into ``results``; past ``slow_ms`` at p95, print the slowest
    statement's plan to stderr and return True."""
    call()  # warm-up: templates compiled, jieba loaded
    statements: list[str] = []
    with connection.execute_wrapper(StatementCounter(statements)):
        call()
    seconds = timed(call, runs)
    p95 = percentile(seconds, 0.95)
    results[f"{name}_queries"] = len(statements)
    results[f"{name}_p50_ms"] = ms(percentile(seconds, 0.50))
    results[f"{name}_p95_ms"] = ms(p95)
    if p95 * 1000 <= slow_ms:
        return False
    with tenancy.activate(tenant):
        statement, plan = slowest_plan(call)
    print(f"--- {name} {label}: p95 {ms(p95)} ms, slowest {ms(statement)} ms", file=sys.stderr)
    print(plan, file=sys.stderr)
    return True


def agent_of(tenant: Tenant, username: str) -> ActingAgent:
    membership = Membership.objects.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise SystemExit(f"no member {username}: run bench.generate first")
    return ActingAgent(user=membership.user, tenant=tenant, membership=membership)


def pages(tenant: Tenant) -> dict[str, tuple[str, str]]:
    """Each measured page: name -> (who asks, URL)."""
    with tenancy.activate(tenant):
        recent = Ticket.objects.order_by("-number").values_list("number", flat=True).first()
        # The ticket page: the newest ticket the measured agent may open.
        agent = agent_of(tenant, f"{tenant.slug}-agent-0")
        newest_of_agent = (
            tickets_in_reach(agent, Ticket.objects.all())
            .order_by("-number")
            .values_list("number", flat=True)
            .first()
        )
        linked = (
            # A linked ticket half-way through the merchant's history, whatever its size.
            Ticket.objects.filter(order__isnull=False, number__gt=(recent or 0) // 2)
            .select_related("order")
            .order_by("number")
            .first()
        )
        if linked is None:
            raise SystemExit("no ticket with an order: run bench.generate first")
        # A cursor halfway down the merchant's history: a deep page, as deep as agents go.
        everything = Ticket.objects.filter(ignored_at__isnull=True).order_by("-updated_at", "-pk")
        middle = everything.values("updated_at", "pk")[everything.count() // 2]
        cursor = inbox.Cursor(updated_at=middle["updated_at"], pk=middle["pk"]).encode()
    order, tracking = linked.order.number, linked.order.tracking_number
    return {
        "inbox_agent": ("agent", "/tickets/"),
        "inbox_agent_mine": ("agent", "/tickets/?view=mine"),
        "inbox_supervisor": ("supervisor", "/tickets/"),
        "inbox_supervisor_unassigned": ("supervisor", "/tickets/?view=unassigned"),
        "inbox_counts_agent": ("agent", "/tickets/counts/"),
        "inbox_counts_supervisor": ("supervisor", "/tickets/counts/"),
        "inbox_deep_page": ("supervisor", f"/tickets/?view=all&older={cursor}"),
        "search_chinese": ("supervisor", f"/tickets/?view=all&q={quote('破损')}"),
        "search_chinese_rare": ("supervisor", f"/tickets/?view=all&q={quote('退款 电话')}"),
        "search_english": ("supervisor", "/tickets/?view=all&q=refund"),
        "search_order": ("supervisor", f"/tickets/?view=all&q={quote(order)}"),
        "search_tracking": ("supervisor", f"/tickets/?view=all&q={quote(tracking)}"),
        "search_agent": ("agent", f"/tickets/?q={quote('破损')}"),
        "ticket_page": ("agent", f"/tickets/{newest_of_agent}/"),
    }


def run(options: argparse.Namespace) -> dict[str, object]:
    tenant = Tenant.objects.filter(slug=options.tenant).first()
    if tenant is None:
        raise SystemExit(f"no merchant {options.tenant}: run bench.generate first")
    with tenancy.activate(tenant):
        tickets = Ticket.objects.count()
    clients = {
        "agent": client_for(f"{tenant.slug}-agent-0"),
        "supervisor": client_for(f"{tenant.slug}-supervisor-0"),
    }
    results: dict[str, object] = {"bench_tenant": tenant.slug, "tickets": tickets}
    slow = []
    for name, (who, url) in pages(tenant).items():
        client = clients[who]
        call = partial(get, client, url)
        if measure(
            results,
            name,
            call,
            tenant=tenant,
            label=url,
            runs=options.runs,
            slow_ms=options.slow_ms,
        ):
            slow.append(name)
    results["slow_pages"] = ",".join(slow) or "none"
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="bench-1m", help="slug of the bench merchant")
    parser.add_argument("--runs", type=int, default=50, help="timed requests of each page")
    parser.add_argument(
        "--slow-ms", type=float, default=50, help="explain the pages whose p95 passes this"
    )
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be >= 1")
    if connection.vendor != "postgresql":
        raise SystemExit("bench.inbox measures PostgreSQL: set DATABASE_URL")
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
