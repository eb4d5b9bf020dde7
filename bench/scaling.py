"""Scaling with processes: inbound mail over HTTP with 1, 2 and 4 web and worker processes, and
the memory each process takes.

Run from the repository root: ``python bench/scaling.py`` (``make bench-scaling`` runs it on
PostgreSQL as the app's role, Redis db 14). For every process count ``n`` in ``--processes`` it
starts the production shape for real, ``uvicorn helpdesk.asgi:application --workers n`` and a
Celery worker with ``--concurrency n`` (prefork, tasks through Redis, channels-redis as the
layer), creates a fresh bench merchant with an email channel, and posts the same generated mail
(``bench/ingest.py``'s mix) to the merchant's inbound email webhook from ``--clients`` threads,
each request carrying the channel secret as a mail forwarder does. It times every answer, then
polls the stored raw rows until every message is filed (processed, or ignored as automated) and
reads each process's memory from ``/proc``. Results go to stdout as ``name: value`` lines with
the process count in the name, and to a JSON file. See bench/README.md and docs/scaling.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LOG_LEVEL", "WARNING")  # the servers' task logs would drown stderr

from django.db import connections  # noqa: E402

from bench import ingest  # noqa: E402 (sets Django up, and MEDIA_ROOT for every child)
from bench.results import add_json_argument, write_json  # noqa: E402
from bench.servers import (  # noqa: E402
    Server,
    cpu_seconds,
    free_port,
    memory_summary,
    parse_processes,
    pss_megabytes,
    start_celery_worker,
    start_uvicorn,
    wait_for_pool,
    wait_until_serving,
    web_processes,
)
from bench.stats import percentile  # noqa: E402
from channels_in.email import delivery_id_of_mail  # noqa: E402
from channels_in.models import ChannelAccount, RawInbound  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.celery import app as celery_app  # noqa: E402
from tickets.models import Message  # noqa: E402

FILED = [RawInbound.State.PROCESSED, RawInbound.State.IGNORED]


@dataclass
class Posted:
    """What the clients saw: each answer's time in seconds, failures, and the wall clock."""

    times: list[float] = field(default_factory=list)
    failures: int = 0
    started_at: datetime | None = None
    seconds: float = 0.0


def post_all(port: int, path: str, secret: str, payloads: list[bytes], clients: int) -> Posted:
    """Post every payload once, from ``clients`` keep-alive connections at the same time; an
    answer other than 202 (or no answer) is a failure."""
    posted = Posted()
    lock = threading.Lock()
    queue = iter(payloads)
    headers = {"Content-Type": "message/rfc822", "X-Helpdesk-Secret": secret}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                payload = next(queue, None)
            if payload is None:
                break
            began = time.perf_counter()
            try:
                conn.request("POST", path, payload, headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 202
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                ok = False
            elapsed = time.perf_counter() - began
            with lock:
                posted.times.append(elapsed)
                posted.failures += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    posted.started_at = datetime.now(UTC)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted.seconds = time.perf_counter() - began
    posted.times.sort()
    return posted


def wait_until_filed(account: ChannelAccount, expected: int, timeout: float) -> int:
    """Poll the stored raw rows until ``expected`` of them left ``received`` (or ``timeout``
    passed, or a row failed); how many did."""
    deadline = time.monotonic() + timeout
    done = 0
    with tenancy.activate(account.tenant):
        while time.monotonic() < deadline:
            rows = RawInbound.objects.filter(account=account)
            done = rows.exclude(state=RawInbound.State.RECEIVED).count()
            if done >= expected or rows.filter(state=RawInbound.State.FAILED).exists():
                break
            time.sleep(0.25)
    connections.close_all()
    return done


def filing_check(account: ChannelAccount, measured_ids: set[str]) -> dict[str, object]:
    """How the run's messages ended: filed, failed, duplicates, and when the last was filed.
    Exactly once means one raw row per message, each processed into its own message (or
    ignored as automated mail), and no message without its raw row."""
    with tenancy.activate(account.tenant):
        rows = list(
            RawInbound.objects.filter(account=account).values(
                "external_id", "state", "state_changed_at", "message_id"
            )
        )
        messages = Message.objects.filter(
            channel_account=account, direction=Message.Direction.INBOUND
        ).count()
    connections.close_all()
    measured = [row for row in rows if row["external_id"] in measured_ids]
    filed = [row for row in measured if row["state"] in FILED]
    linked = [row["message_id"] for row in rows if row["message_id"] is not None]
    processed_all = sum(row["state"] == RawInbound.State.PROCESSED for row in rows)
    exactly_once = (
        len(measured) == len(measured_ids)
        and len(filed) == len(measured)
        and len(set(linked)) == len(linked) == processed_all == messages
    )
    return {
        "filed": len(filed),
        "ignored": sum(row["state"] == RawInbound.State.IGNORED for row in measured),
        "failed": sum(row["state"] == RawInbound.State.FAILED for row in measured),
        "duplicate": sum(row["state"] == RawInbound.State.DUPLICATE for row in measured),
        "missing": len(measured_ids) - len(measured),
        "exactly_once": exactly_once,
        "last_filed_at": max((row["state_changed_at"] for row in filed), default=None),
    }


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        # As in production: the endpoint hands the payload to Redis; the worker files it.
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # The bench posts far faster than one channel's quota allows; throughput is measured.
        "HELPDESK_INBOUND_RATE": "1000000/m",
        "LOG_LEVEL": "WARNING",
    }


def run_one(
    n: int, options: argparse.Namespace, payloads: list[bytes], message_ids: list[str]
) -> dict[str, object]:
    """One process count on a fresh merchant; its data is deleted afterwards (unless --keep),
    whatever happens."""
    slug = f"{options.tenant_prefix}-n{n}"
    tenant, account = ingest.bench_channel(slug)
    connections.close_all()
    try:
        figures: dict[str, object] = {"bench_tenant": slug}
        posted = serve_and_post(n, options, account, payloads, figures)
        outcome = filing_check(account, set(message_ids[options.warmup :]))
    finally:
        if not options.keep:
            ingest.delete_bench_data(tenant)
            connections.close_all()
    return figures | run_figures(len(payloads) - options.warmup, posted, outcome)


def serve_and_post(
    n: int,
    options: argparse.Namespace,
    account: ChannelAccount,
    payloads: list[bytes],
    figures: dict[str, object],
) -> Posted:
    """Start uvicorn and the worker with ``n`` processes each, warm them up, post the timed
    mail and wait until it is filed; memory goes into ``figures``. Stops both, and purges the
    queue, however it ends."""
    port = free_port()
    path = f"/inbound/{account.tenant.slug}/email/{account.pk}/"
    env = server_env()
    servers: list[Server] = []
    try:
        web = start_uvicorn(port, n, env)
        servers.append(web)
        worker = start_celery_worker(n, env, name=f"scaling-{os.getpid()}-n{n}")
        servers.append(worker)
        wait_until_serving(web, port, n)
        pool = wait_for_pool(worker, n)
        web_pids = web_processes(web.pid, n)
        figures |= memory_summary("memory_web_process_idle", web_pids)
        figures |= memory_summary("memory_celery_child_idle", pool)

        warm = options.warmup
        warmed = post_all(port, path, account.inbound_secret, payloads[:warm], options.clients)
        if warmed.failures or wait_until_filed(account, warm, options.timeout) < warm:
            raise RuntimeError("the warm-up messages were not all accepted and filed")

        web_side, worker_side = [web.pid, *web_pids], [worker.pid, *pool]
        cpu_before = cpu_seconds(web_side), cpu_seconds(worker_side)
        figures["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
        posted = post_all(port, path, account.inbound_secret, payloads[warm:], options.clients)
        wait_until_filed(account, len(payloads), options.timeout)
        figures["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        measured = len(payloads) - warm
        web_cpu = cpu_seconds(web_side) - cpu_before[0]
        worker_cpu = cpu_seconds(worker_side) - cpu_before[1]
        figures["cpu_ms_per_message_web"] = round(1000 * web_cpu / measured, 1)
        figures["cpu_ms_per_message_worker"] = round(1000 * worker_cpu / measured, 1)
        figures |= memory_summary("memory_web_process", web_pids)
        figures |= memory_summary("memory_celery_child", pool)
        figures["memory_all_processes_pss_mb"] = round(
            sum(pss_megabytes(pid) for pid in {*web_side, *worker_side}), 1
        )
        return posted
    finally:
        for server in reversed(servers):
            server.stop()
        celery_app.control.purge()


def run_figures(measured: int, posted: Posted, outcome: dict[str, object]) -> dict[str, object]:
    """Answers per second and their p50/p95, filed per second from the first post to the last
    message filed, and failures: refused answers plus messages not filed."""
    ms = [elapsed * 1000 for elapsed in posted.times]
    last_filed_at = outcome["last_filed_at"]
    filed_seconds = (
        (last_filed_at - posted.started_at).total_seconds()
        if isinstance(last_filed_at, datetime) and posted.started_at
        else 0.0
    )
    filed = int(outcome["filed"])  # type: ignore[call-overload]
    return {
        "messages": measured,
        "answers_per_second": round(len(ms) / posted.seconds, 1) if posted.seconds else 0.0,
        "answer_p50_ms": round(percentile(ms, 0.50), 1),
        "answer_p95_ms": round(percentile(ms, 0.95), 1),
        "answer_max_ms": round(max(ms, default=0.0), 1),
        "filed_seconds": round(filed_seconds, 2),
        "filed_per_second": round(filed / filed_seconds, 1) if filed_seconds > 0 else 0.0,
        "filed": filed,
        "ignored_automated": outcome["ignored"],
        "failed": outcome["failed"],
        "duplicate": outcome["duplicate"],
        "http_failures": posted.failures,
        "failures": posted.failures + (measured - filed),
        "filed_exactly_once": outcome["exactly_once"],
    }


def with_speedups(by_n: dict[int, dict[str, object]]) -> dict[str, object]:
    """Flatten per-count figures to ``<name>_n<N>`` and add each count's speed-up over the
    first count: ``speedup_n<N>`` (filed per second) and ``answers_speedup_n<N>``."""
    flat = {f"{name}_n{n}": value for n, figures in by_n.items() for name, value in figures.items()}
    first, *others = by_n
    for name, rate in (("speedup", "filed_per_second"), ("answers_speedup", "answers_per_second")):
        base = float(by_n[first][rate])  # type: ignore[arg-type]
        for n in others:
            ratio = float(by_n[n][rate]) / base if base else 0.0  # type: ignore[arg-type]
            flat[f"{name}_n{n}"] = round(ratio, 2)
    return flat


def stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def run(options: argparse.Namespace) -> dict[str, object]:
    total = options.warmup + options.messages
    # One mail set for every process count (same seed, same run id, so the same Message-IDs
    # in each merchant): every run does exactly the same work.
    mix = ingest.MailMix(seed=options.seed, customers=options.customers, run="scaling")
    generated = list(mix.messages(total))
    payloads = [payload for _, payload in generated]
    message_ids = [delivery_id_of_mail(payload) for payload in payloads]
    results: dict[str, object] = {
        "cpus": os.cpu_count(),
        "clients": options.clients,
        "processes": ",".join(str(n) for n in options.processes),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    by_n: dict[int, dict[str, object]] = {}
    for n in options.processes:
        print(f"scaling: {n} web and {n} worker processes", file=sys.stderr)
        by_n[n] = run_one(n, options, payloads, message_ids)
    results |= with_speedups(by_n)
    results["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--processes", type=parse_processes, default=[1, 2, 4], help="web and worker counts"
    )
    parser.add_argument("--messages", type=int, default=1000, help="timed messages per count")
    parser.add_argument("--warmup", type=int, default=20, help="untimed messages first")
    parser.add_argument("--clients", type=int, default=8, help="connections posting at once")
    parser.add_argument("--customers", type=int, default=500, help="distinct senders")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated mail")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for filing")
    parser.add_argument(
        "--tenant-prefix",
        default=f"bench-scale-{time.strftime('%Y%m%d%H%M%S')}",
        help="bench merchants are <prefix>-n1, -n2, ...",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench merchants' data")
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.messages < 1 or options.warmup < 1 or options.clients < 1:
        parser.error("need --messages, --warmup and --clients of at least 1")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        results = run(options)
    finally:
        if ingest.OWN_MEDIA_ROOT:
            shutil.rmtree(os.environ["MEDIA_ROOT"], ignore_errors=True)
    for name, value in results.items():
        print(f"{name}: {value}")
    default = REPO / "bench" / "results" / f"scaling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(options.json or default, results)


if __name__ == "__main__":
    main()
