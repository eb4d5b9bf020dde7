"""Live chat benchmark: many visitors' widgets held open at once against a real ASGI server, and
how long a visitor's message takes to reach an agent's socket.

Run from the repository root: ``python bench/ws.py`` (``make bench-ws`` runs it on PostgreSQL as
the app's role, with Redis as the channel layer). It creates a bench merchant with a live chat
channel and a supervisor, starts uvicorn on ``helpdesk.asgi`` in a process of its own and, as in
production, a Celery worker (``--worker-concurrency`` processes) that files what the server
stores (``--eager`` instead files each message inside the server, as ``make run`` does), and
from this process:

1. opens ``--visitors`` widget sockets (``/ws/chat/<key>/`` with the store's Origin), each saying
   hello and waiting for its welcome, ``--connect-batch`` at a time;
2. holds them all open for ``--hold`` seconds and counts those still open;
3. sends ``--messages`` first messages from different visitors, ``--rate`` per second, while a
   signed-in supervisor's socket (``/ws/agent/``) listens: the latency is from a visitor's send
   to the moment the agent's socket hears the new ticket (``ticket.created``, matched by the
   message's subject).

Results go to stdout as ``name: value`` lines; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

import django  # noqa: E402

django.setup()

import websockets  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from channels_in.chat_channels import ChatSettings, create_chat_channel  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import Membership, Role, Tenant  # noqa: E402
from helpdesk.permissions import acting_agent_for  # noqa: E402
from tickets.models import Group  # noqa: E402

STORE = "https://bench-store.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_chat(slug: str) -> tuple[Tenant, str, str]:
    """A merchant with a chat channel for the bench store and a supervisor who hears every
    ticket; the channel's public key and the supervisor's session cookie."""
    tenant = Tenant.objects.create(slug=slug, name=f"Bench {slug}")
    user = get_user_model().objects.create(username=f"{slug}-supervisor")
    Membership.objects.create(tenant=tenant, user=user, role=Role.ADMIN)
    with tenancy.activate(tenant):
        Group.objects.create(name="Live chat", is_default=True)
        webchat = create_chat_channel(
            acting_agent=acting_agent_for(user, tenant),
            chat_settings=ChatSettings(name="Bench chat", allowed_origins=[STORE]),
        )
    client = Client()
    client.force_login(user)
    return tenant, webchat.public_key, client.cookies[settings.SESSION_COOKIE_NAME].value


def process_env(options: argparse.Namespace) -> dict[str, str]:
    eager = "true" if options.eager else "false"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        "CELERY_TASK_ALWAYS_EAGER": eager,
    }


def start_worker(options: argparse.Namespace) -> subprocess.Popen | None:
    if options.eager:
        return None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpdesk",
            "worker",
            "--loglevel",
            "warning",
            "--concurrency",
            str(options.worker_concurrency),
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=process_env(options),
    )


def stop(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    process.terminate()  # uvicorn waits for open sockets to close: not for ever
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(port: int, options: argparse.Namespace) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "helpdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
        cwd=REPO,
        env=process_env(options),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("uvicorn did not start")


def rss_megabytes(pid: int) -> float:
    """The server's resident memory, from /proc (0 where there is none)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class Visitor:
    def __init__(self, number: int) -> None:
        self.number = number
        self.socket: Any = None
        self.welcomed_in = 0.0
        self.acked = asyncio.Event()

    async def open(self, url: str) -> None:
        started = time.perf_counter()
        self.socket = await websockets.connect(url, origin=STORE, open_timeout=60, max_queue=64)
        await self.socket.send(json.dumps({"type": "hello", "token": "", "lang": "en"}))
        while True:
            event = json.loads(await asyncio.wait_for(self.socket.recv(), 120))
            if event["type"] == "welcome":
                break
        self.welcomed_in = time.perf_counter() - started
        asyncio.get_running_loop().create_task(self.listen())

    async def listen(self) -> None:
        try:
            async for raw in self.socket:
                if json.loads(raw).get("type") == "ack":
                    self.acked.set()
        except websockets.ConnectionClosed:
            pass

    @property
    def is_open(self) -> bool:
        return self.socket is not None and self.socket.state == websockets.protocol.State.OPEN


async def open_all(url: str, count: int, batch: int) -> tuple[list[Visitor], float]:
    visitors = [Visitor(number) for number in range(count)]
    started = time.perf_counter()
    for first in range(0, count, batch):
        await asyncio.gather(*(visitor.open(url) for visitor in visitors[first : first + batch]))
    return visitors, time.perf_counter() - started


async def agent_listener(url: str, cookie: str, heard: dict[str, float]) -> Any:
    agent = await websockets.connect(
        url,
        origin=url.replace("ws://", "http://").split("/ws/")[0],
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
        max_queue=None,
    )

    async def listen() -> None:
        try:
            async for raw in agent:
                event = json.loads(raw)
                if event.get("event") == "ticket.created":
                    subject = event["payload"].get("subject", "")
                    heard.setdefault(subject, time.perf_counter())
        except websockets.ConnectionClosed:
            pass

    return agent, asyncio.get_running_loop().create_task(listen())


async def scenario(options: argparse.Namespace, base: str, key: str, cookie: str) -> dict:
    heard: dict[str, float] = {}
    agent, listening = await agent_listener(f"{base}/ws/agent/", cookie, heard)
    visitors, opened_in = await open_all(
        f"{base}/ws/chat/{key}/", options.visitors, options.connect_batch
    )
    welcome = sorted(visitor.welcomed_in for visitor in visitors)
    results: dict[str, Any] = {
        "ws_visitors": len(visitors),
        "ws_open_all_seconds": round(opened_in, 2),
        "ws_welcome_p50_ms": round(percentile(welcome, 0.50) * 1000, 1),
        "ws_welcome_p95_ms": round(percentile(welcome, 0.95) * 1000, 1),
    }
    await asyncio.sleep(options.hold)
    results["ws_open_after_hold"] = sum(visitor.is_open for visitor in visitors)
    results["ws_hold_seconds"] = options.hold

    # One message first, untimed: the worker (or the server's filing path) is warm and ready.
    await visitors[-1].socket.send(
        json.dumps({"type": "message", "id": "warm", "text": "bench warm-up"})
    )
    deadline = time.perf_counter() + 120
    while "bench warm-up" not in heard and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)

    senders = visitors[: options.messages]
    sent_at: dict[str, float] = {}
    started = time.perf_counter()
    for index, visitor in enumerate(senders):
        subject = f"bench message {index} from visitor {visitor.number}"
        due = started + index / options.rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent_at[subject] = time.perf_counter()
        await visitor.socket.send(
            json.dumps({"type": "message", "id": f"b{index}", "text": subject})
        )
    deadline = time.perf_counter() + 60
    while len([s for s in sent_at if s in heard]) < len(sent_at) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    sending_took = time.perf_counter() - started
    # An ack may trail the agent's event: the event leaves on commit, the ack after.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(visitor.acked.wait() for visitor in senders)), timeout=10
        )
    latencies = sorted(heard[s] - t for s, t in sent_at.items() if s in heard)
    results |= {
        "ws_messages": len(sent_at),
        "ws_messages_rate_per_second": options.rate,
        "ws_messages_heard_by_agent": len(latencies),
        "ws_messages_acked": sum(visitor.acked.is_set() for visitor in senders),
        "ws_send_to_agent_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "ws_send_to_agent_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "ws_send_to_agent_max_ms": round((latencies[-1] if latencies else 0) * 1000, 1),
        "ws_messages_seconds": round(sending_took, 2),
        "ws_open_at_end": sum(visitor.is_open for visitor in visitors),
    }
    await asyncio.gather(*(visitor.socket.close() for visitor in visitors if visitor.socket))
    await agent.close()
    listening.cancel()
    return results


def run(options: argparse.Namespace) -> dict[str, object]:
    slug = f"bench-ws-{time.strftime('%Y%m%d%H%M%S')}"
    tenant, key, cookie = bench_chat(slug)
    port = free_port()
    worker = start_worker(options)
    server = None
    try:
        server = start_server(port, options)
        results: dict[str, object] = {
            "bench_tenant": slug,
            "ws_filing": "in the server (eager)" if options.eager else "celery worker",
        }
        results |= asyncio.run(scenario(options, f"ws://127.0.0.1:{port}", key, cookie))
        results["ws_server_rss_mb"] = rss_megabytes(server.pid)
    finally:
        stop(server)
        stop(worker)
        Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=1000, help="widget sockets held open")
    parser.add_argument("--connect-batch", type=int, default=50, help="sockets opened at once")
    parser.add_argument("--hold", type=float, default=10, help="seconds every socket stays idle")
    parser.add_argument("--messages", type=int, default=200, help="visitors who send a message")
    parser.add_argument("--rate", type=float, default=20, help="messages per second")
    parser.add_argument("--eager", action="store_true", help="file messages in the server")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery processes")
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.visitors < 1 or options.messages > options.visitors or options.rate <= 0:
        parser.error("need --visitors >= 1, --messages <= --visitors and --rate > 0")
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
