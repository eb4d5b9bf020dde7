"""REST API benchmark: how long /api/v1/ takes for a merchant with a million tickets, called
with API keys as a shop's system would.

``python -m bench.api --tenant bench-1m`` (``make bench-api`` runs it on the ``helpdesk_bench``
database as the app's role, after ``make bench-data``). Keys are issued for the bench
merchant's first supervisor and first agent (revoked at the end); each endpoint is requested
once to warm up, once counting its statements and ``--runs`` times timed through Django's test
client: the whole request, middleware, API key authentication, tenancy, throttles (the quotas
are lifted for the run), every query and the JSON rendering. The deep page follows ``next``
``--deep-pages`` times from the first page, then is timed itself.

Results go to stdout as ``name: value`` lines (``tickets_list_p95_ms`` is the ticket list of a
supervisor, who sees every ticket); see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402
from django.apps import apps as django_apps  # noqa: E402

if not django_apps.ready:
    django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.inbox import measure  # noqa: E402
from bench.results import add_json_argument, write_json  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import ApiKey, Membership, Tenant  # noqa: E402
from tickets.models import Customer, Order, Ticket  # noqa: E402


def key_client(tenant: Tenant, username: str) -> tuple[Client, ApiKey]:
    membership = Membership.objects.filter(tenant=tenant, user__username=username).first()
    if membership is None:
        raise SystemExit(f"no member {username}: run bench.generate --tenant {tenant.slug} first")
    key, token = ApiKey.issue(
        tenant=tenant, acting_user=membership.user, name="bench.api", scopes=["read"]
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/json"), key


def get(client: Client, url: str) -> dict:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
    return response.json()


def endpoints(tenant: Tenant, supervisor: Client, deep_pages: int) -> dict[str, tuple[str, str]]:
    """Each measured endpoint: name -> (who asks, URL)."""
    with tenancy.activate(tenant):
        newest = Ticket.objects.order_by("-number").values_list("number", flat=True).first()
        customer = Ticket.objects.order_by("-number").values_list("customer_id", flat=True).first()
        order = Order.objects.order_by("-placed_at").values_list("number", flat=True).first()
        if newest is None or order is None or customer is None:
            raise SystemExit("no tickets or orders: run bench.generate first")
    deep = "/api/v1/tickets/"
    for _ in range(deep_pages):
        deep = get(supervisor, deep)["next"]
        if deep is None:
            raise SystemExit("fewer pages than --deep-pages")
    return {
        "tickets_list": ("supervisor", "/api/v1/tickets/"),
        "tickets_list_agent": ("agent", "/api/v1/tickets/"),
        "tickets_list_unsolved": ("supervisor", "/api/v1/tickets/?status="),
        "tickets_list_open_high": ("supervisor", "/api/v1/tickets/?status=open&priority=high"),
        "tickets_list_by_number": ("supervisor", "/api/v1/tickets/?ordering=-number"),
        "tickets_list_customer": ("supervisor", f"/api/v1/tickets/?customer={customer}"),
        "tickets_list_deep_page": ("supervisor", deep),
        "ticket_detail": ("supervisor", f"/api/v1/tickets/{newest}/"),
        "ticket_messages": ("supervisor", f"/api/v1/tickets/{newest}/messages/"),
        "customers_list": ("supervisor", "/api/v1/customers/"),
        "orders_list": ("supervisor", "/api/v1/orders/"),
        "order_detail": ("supervisor", f"/api/v1/orders/{order}/"),
    }


def run(options: argparse.Namespace) -> dict[str, object]:
    tenant = Tenant.objects.filter(slug=options.tenant).first()
    if tenant is None:
        raise SystemExit(f"no merchant {options.tenant}: run bench.generate first")
    # The quotas are lifted: the benchmark measures the work, not the refusal.
    settings.HELPDESK_API_RATE = "1000000/m"
    settings.HELPDESK_API_ADDRESS_RATE = "1000000/m"
    with tenancy.activate(tenant):
        results: dict[str, object] = {
            "bench_tenant": tenant.slug,
            "tickets": Ticket.objects.count(),
            "customers": Customer.objects.count(),
            "orders": Order.objects.count(),
        }
    supervisor, supervisor_key = key_client(tenant, f"{tenant.slug}-supervisor-0")
    agent, agent_key = key_client(tenant, f"{tenant.slug}-agent-0")
    clients = {"supervisor": supervisor, "agent": agent}
    slow = []
    try:
        for name, (who, url) in endpoints(tenant, supervisor, options.deep_pages).items():
            call = partial(get, clients[who], url)
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
    finally:
        ApiKey.objects.filter(pk__in=[supervisor_key.pk, agent_key.pk]).update(
            revoked_at=timezone.now()
        )
    results["slow_endpoints"] = ",".join(slow) or "none"
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="bench-1m", help="slug of the bench merchant")
    parser.add_argument("--runs", type=int, default=50, help="timed requests of each endpoint")
    parser.add_argument(
        "--deep-pages", type=int, default=20, help="pages followed for the deep one"
    )
    parser.add_argument(
        "--slow-ms", type=float, default=100, help="explain the endpoints whose p95 passes this"
    )
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be >= 1")
    if connection.vendor != "postgresql":
        raise SystemExit("bench.api measures PostgreSQL: set DATABASE_URL")
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
