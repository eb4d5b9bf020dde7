"""Supervisor dashboard benchmark: how long /supervisor/ takes, and how many queries it sends,
for a merchant with a million tickets.

``python -m bench.dashboard --tenant bench-1m`` (``make bench-dashboard`` runs it on the
``helpdesk_bench`` database as the app's role, after ``make bench-data``). A supervisor of the
bench merchant (``<tenant>-supervisor-0``, made by bench/generate.py) signs in with Django's test
client and the page is rendered ``--runs`` times after one warm-up; the statements of one
rendering are counted. The page keeps its 30-day sections for HELPDESK_DASHBOARD_CACHE_SECONDS,
so it is timed again ``--uncached-runs`` times counting them on every view. Then each metric the
page is built from (escalation/metrics.py) is timed on its own, ``--metric-runs`` times. A metric
whose p95 passes ``--slow-ms`` gets the plan of its slowest statement (``EXPLAIN (ANALYZE,
BUFFERS)``) on stderr.

Results go to stdout as ``name: value`` lines; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402

from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from escalation import metrics  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import Tenant  # noqa: E402
from tickets.models import Ticket  # noqa: E402

DASHBOARD_URL = "/supervisor/"

# The metrics the page is built from, as the page asks for them.
METRICS: dict[str, Callable[[], Any]] = {
    "escalation_rate": lambda: metrics.escalation_rate(days=7),
    "rate_series": lambda: metrics.rate_series(days=30, window=7),
    "agent_table": lambda: metrics.agent_table(days=30),
    "root_causes": lambda: metrics.root_causes(days=30),
    "defect_rates": lambda: metrics.defect_rates(days=30),
    "what_if": lambda: metrics.what_if(days=7),
    "remedy_spend": lambda: metrics.remedy_spend(),
}

# What the database backend puts before a statement to carry the tenant (helpdesk.db).
_TENANT_PREFIX = re.compile(r"^SELECT set_config\('app\.tenant_id', '\d*', true\); ")


def timed(call: Callable[[], Any], runs: int) -> list[float]:
    """Sorted wall-clock seconds of ``runs`` calls."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def supervisor_client(tenant: Tenant) -> Client:
    """A browser signed in as the bench merchant's first supervisor, reading English."""
    username = f"{tenant.slug}-supervisor-0"
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise SystemExit(f"no user {username}: run bench.generate --tenant {tenant.slug} first")
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = "en"
    return client


def render_dashboard(client: Client) -> None:
    response = client.get(DASHBOARD_URL)
    if response.status_code != 200:
        raise SystemExit(f"{DASHBOARD_URL} answered {response.status_code}")


def slowest_plan(call: Callable[[], Any]) -> tuple[float, str]:
    """The slowest statement of one ``call`` and its ``EXPLAIN (ANALYZE, BUFFERS)`` plan, with
    the active tenant, as the call ran it."""
    with CaptureQueriesContext(connection) as captured:
        call()
    statements = [q for q in captured.captured_queries if "SELECT" in q["sql"].upper()]
    if not statements:
        return 0.0, ""
    slowest = max(statements, key=lambda q: float(q["time"]))
    sql = _TENANT_PREFIX.sub("", slowest["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return float(slowest["time"]), f"{sql}\n{plan}"


def run(options: argparse.Namespace) -> dict[str, object]:
    tenant = Tenant.objects.filter(slug=options.tenant).first()
    if tenant is None:
        raise SystemExit(f"no merchant {options.tenant}: run bench.generate first")
    with tenancy.activate(tenant):
        tickets = Ticket.objects.count()
    client = supervisor_client(tenant)
    results: dict[str, object] = {"bench_tenant": tenant.slug, "tickets": tickets}

    started = time.perf_counter()
    render_dashboard(client)  # warm-up: the first rendering fills caches and compiles templates
    results["dashboard_first_ms"] = ms(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as captured:
        render_dashboard(client)
    results["dashboard_queries"] = len(captured.captured_queries)
    seconds = timed(lambda: render_dashboard(client), options.runs)
    results |= {
        "dashboard_runs": options.runs,
        "dashboard_p50_ms": ms(percentile(seconds, 0.50)),
        "dashboard_p95_ms": ms(percentile(seconds, 0.95)),
        "dashboard_max_ms": ms(seconds[-1]),
    }

    # The same page counting its 30-day sections every time, as on the first view of a minute
    # (escalation.dashboard_views.month_figures).
    with override_settings(HELPDESK_DASHBOARD_CACHE_SECONDS=0):
        with CaptureQueriesContext(connection) as captured:
            render_dashboard(client)
        results["dashboard_uncached_queries"] = len(captured.captured_queries)
        seconds = timed(lambda: render_dashboard(client), options.uncached_runs)
    results |= {
        "dashboard_uncached_runs": options.uncached_runs,
        "dashboard_uncached_p50_ms": ms(percentile(seconds, 0.50)),
        "dashboard_uncached_p95_ms": ms(percentile(seconds, 0.95)),
    }

    slow = []
    with tenancy.activate(tenant):
        for name, call in METRICS.items():
            seconds = timed(call, options.metric_runs)
            with CaptureQueriesContext(connection) as captured:
                call()
            p95 = percentile(seconds, 0.95)
            results[f"{name}_p50_ms"] = ms(percentile(seconds, 0.50))
            results[f"{name}_p95_ms"] = ms(p95)
            results[f"{name}_queries"] = len(captured.captured_queries)
            if p95 * 1000 > options.slow_ms:
                slow.append(name)
                statement_seconds, plan = slowest_plan(call)
                print(
                    f"--- {name}: p95 {ms(p95)} ms, slowest statement {ms(statement_seconds)} ms\n"
                    f"{plan}\n",
                    file=sys.stderr,
                )
    results["slow_metrics"] = ",".join(slow) or "none"
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="bench-1m", help="slug of the bench merchant")
    parser.add_argument("--runs", type=int, default=50, help="timed renderings of the page")
    parser.add_argument(
        "--metric-runs", type=int, default=None, help="timed calls of each metric (--runs)"
    )
    parser.add_argument(
        "--uncached-runs",
        type=int,
        default=5,
        help="timed renderings with the 30-day sections counted every time",
    )
    parser.add_argument(
        "--slow-ms", type=float, default=500, help="explain the metrics whose p95 passes this"
    )
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.metric_runs is None:
        options.metric_runs = options.runs
    if options.runs < 1 or options.metric_runs < 1 or options.uncached_runs < 1:
        parser.error("--runs, --metric-runs and --uncached-runs must be >= 1")
    if connection.vendor != "postgresql":
        raise SystemExit("bench.dashboard measures PostgreSQL: set DATABASE_URL")
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
