"""How fast a WeChat push and a Twilio call webhook are answered while email ingest runs at full
speed.

WeChat gives a server 5 seconds to answer a push before it retries (three times, then tells the
customer the account cannot answer); Twilio waits 15 seconds for a call's TwiML, while the caller
hears silence. The endpoints only verify, store and queue (the phone channel also answers with
TwiML naming who is on duty); this bench checks that they stay fast while the machine is busy
filing mail.

Run from the repository root: ``python bench/webhooks.py`` (``make bench-webhooks`` runs it on
PostgreSQL as the app's role). It creates a bench merchant with an email channel, a WeChat
channel in safe mode and a phone channel (a Twilio number), starts the real server (uvicorn,
``helpdesk.asgi``, one process, Celery handing tasks to Redis as in production) on a free port,
then fires signed, encrypted WeChat pushes and signed Twilio incoming-call webhooks at it with
``http.client`` from a few threads: first with the machine idle, then while
``--ingest-processes`` processes store and file generated mail (``bench/ingest.py``'s mix) as
fast as they can. Afterwards the stored deliveries are filed, to show they were whole. Results
go to stdout as ``name: value`` lines. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The filing at the end logs every task at INFO: keep stderr readable.
os.environ.setdefault("LOG_LEVEL", "WARNING")

from django.db import connections  # noqa: E402

from bench.ingest import MailMix, bench_channel, delete_bench_data  # noqa: E402 (sets Django up)
from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from channels_in.base import Envelope  # noqa: E402
from channels_in.crypto import encrypt_secret  # noqa: E402
from channels_in.models import ChannelAccount, PhoneLine, RawInbound, WeChatAccount  # noqa: E402
from channels_in.phone_twiml import SIGNATURE_HEADER, twilio_signature  # noqa: E402
from channels_in.pipeline import process_raw, store_raw  # noqa: E402
from channels_in.wechat_crypto import MessageCipher, signature  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.celery import app as celery_app  # noqa: E402
from helpdesk.models import Tenant  # noqa: E402
from tickets.models import Message  # noqa: E402

TOKEN = "benchToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx0000000000b3c4d5"
CONTENT = ["你好，订单 SO2026{n:05d} 还没发货", "退款什么时候到账？", "[图片]请看一下破损的地方"]
TWILIO_AUTH_TOKEN = "benchTwilioAuthToken2026"
TWILIO_NUMBER = "+14155550100"


def wechat_channel(tenant: Tenant) -> ChannelAccount:
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.create(kind="wechat", name="Bench 公众号")
        WeChatAccount.objects.create(
            account=account,
            app_id=APP_ID,
            token=TOKEN,
            encoding_aes_key_encrypted=encrypt_secret(AES_KEY),
        )
        return account


def phone_channel(tenant: Tenant) -> ChannelAccount:
    """A phone channel whose line is a Twilio number signed with ``TWILIO_AUTH_TOKEN``."""
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.create(kind="phone", name="Bench 热线")
        PhoneLine.objects.create(
            account=account,
            number=TWILIO_NUMBER,
            auth_token_encrypted=encrypt_secret(TWILIO_AUTH_TOKEN),
        )
        return account


# One request to send: the path with its query, the body and the headers.
Request = tuple[str, bytes, dict[str, str]]


class Pushes:
    """Safe-mode text pushes as WeChat sends them, each with its own MsgId, from ``customers``
    followers."""

    def __init__(self, *, path: str, customers: int) -> None:
        self.path = path
        self.cipher = MessageCipher(AES_KEY, APP_ID)
        self.customers = customers
        self.counter = 0
        self.lock = threading.Lock()
        self.run = uuid.uuid4().int % 10**9

    def next(self) -> Request:
        with self.lock:
            self.counter += 1
            n = self.counter
        now = str(int(time.time()))
        plain = (
            f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<FromUserName><![CDATA[oBench{n % self.customers:06d}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{CONTENT[n % len(CONTENT)].format(n=n)}]]></Content>"
            f"<MsgId>{self.run}{n:09d}</MsgId></xml>"
        ).encode()
        encrypt = self.cipher.encrypt(plain)
        nonce = str(n)
        query = {
            "signature": signature(TOKEN, now, nonce),
            "timestamp": now,
            "nonce": nonce,
            "openid": f"oBench{n % self.customers:06d}",
            "encrypt_type": "aes",
            "msg_signature": signature(TOKEN, now, nonce, encrypt),
        }
        body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return f"{self.path}?{urlencode(query)}", body.encode(), {"Content-Type": "text/xml"}

    @staticmethod
    def accepted(status: int, answer: bytes) -> bool:
        return status == 200 and answer == b"success"


class Calls:
    """Twilio's voice webhook for an incoming call, as Twilio posts it: a form signed with
    X-Twilio-Signature (HMAC-SHA1 of the full URL and the sorted fields, with the line's auth
    token), each a call of its own (``CallSid``) from one of ``customers`` numbers."""

    def __init__(self, *, port: int, path: str, customers: int) -> None:
        self.target = f"{path}?event=voice"
        # The URL Twilio requested, as the server rebuilds it from the Host header.
        self.url = f"http://127.0.0.1:{port}{self.target}"
        self.customers = customers
        self.counter = 0
        self.lock = threading.Lock()
        self.run = uuid.uuid4().hex[:8]

    def next(self) -> Request:
        with self.lock:
            self.counter += 1
            n = self.counter
        caller = f"+86138{n % self.customers:08d}"
        form = {
            "AccountSid": "AC00000000000000000000000000000001",
            "ApiVersion": "2010-04-01",
            "CallSid": f"CA{self.run}{n:024d}",
            "Called": TWILIO_NUMBER,
            "Caller": caller,
            "CallerCountry": "CN",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": caller,
            "FromCountry": "CN",
            "To": TWILIO_NUMBER,
            "ToCountry": "US",
        }
        signed = twilio_signature(auth_token=TWILIO_AUTH_TOKEN, url=self.url, params=form.items())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: signed,
        }
        return self.target, urlencode(form).encode(), headers

    @staticmethod
    def accepted(status: int, answer: bytes) -> bool:
        return status == 200 and b"<Response" in answer


def fire(port: int, source: Pushes | Calls, *, count: int, threads: int) -> tuple[list[float], int]:
    """Post ``count`` requests of ``source`` from ``threads`` keep-alive connections; each
    answer's time in seconds, and how many answers the provider would not have taken."""
    times: list[float] = []
    errors = [0]
    left = [count]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            target, body, headers = source.next()
            started = time.perf_counter()
            try:
                conn.request("POST", target, body, headers)
                response = conn.getresponse()
                answer = response.read()
                ok = source.accepted(response.status, answer)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
                errors[0] += not ok
        conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sorted(times), errors[0]


def ingest_forever(slug: str, seed: int, stop: Event, filed: Synchronized[int]) -> None:
    """One email worker: generate, store and file mail until told to stop."""
    try:
        tenant = Tenant.objects.get(slug=slug)
        with tenancy.activate(tenant):
            account = ChannelAccount.objects.get(kind="email", name="Bench mail")
            mix = MailMix(seed=seed, customers=2000, run=uuid.uuid4().hex[:12])
            for _, payload in mix.messages(10**9):
                if stop.is_set():
                    break
                try:
                    raw, _ = store_raw(
                        account=account,
                        envelope=Envelope.of(payload),
                        source=RawInbound.Source.IMPORT,
                    )
                    process_raw(raw.pk)
                except Exception:
                    continue
                with filed.get_lock():
                    filed.value += 1
    finally:
        connections.close_all()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        # As in production: the endpoint hands the push to the broker, no worker runs it inline.
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "HELPDESK_INBOUND_RATE": "1000000/m",
        "LOG_LEVEL": "WARNING",
    }
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
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start within 60 seconds")


def summary(prefix: str, times: list[float], errors: int) -> dict[str, object]:
    ms = [t * 1000 for t in times]
    return {
        f"{prefix}_pushes": len(ms),
        f"{prefix}_errors": errors,
        f"{prefix}_p50_ms": round(percentile(ms, 0.50), 1),
        f"{prefix}_p95_ms": round(percentile(ms, 0.95), 1),
        f"{prefix}_p99_ms": round(percentile(ms, 0.99), 1),
        f"{prefix}_max_ms": round(max(ms, default=0.0), 1),
    }


def run(options: argparse.Namespace) -> dict[str, object]:
    slug = f"bench-wechat-{time.strftime('%Y%m%d%H%M%S')}"
    tenant, _ = bench_channel(slug)
    account = wechat_channel(tenant)
    phone = phone_channel(tenant)
    pushes = Pushes(path=f"/inbound/{slug}/wechat/{account.pk}/", customers=options.customers)
    port = free_port()
    calls = Calls(port=port, path=f"/inbound/{slug}/phone/{phone.pk}/", customers=options.customers)
    connections.close_all()  # the forked ingest processes open their own
    server = start_server(port)
    results: dict[str, object] = {
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    filed = context.Value("i", 0)
    ingest: list[multiprocessing.process.BaseProcess] = []
    try:
        fire(port, pushes, count=options.warmup, threads=options.threads)
        fire(port, calls, count=options.warmup, threads=options.threads)
        idle, idle_errors = fire(port, pushes, count=options.pushes, threads=options.threads)
        results.update(summary("wechat_idle", idle, idle_errors))
        idle, idle_errors = fire(port, calls, count=options.calls, threads=options.threads)
        results.update(summary("twilio_idle", idle, idle_errors))

        ingest = [
            context.Process(target=ingest_forever, args=(slug, seed, stop, filed))
            for seed in range(1, options.ingest_processes + 1)
        ]
        for process in ingest:
            process.start()
        warm_by = time.monotonic() + 120
        while filed.value < 20 * options.ingest_processes:  # every worker warmed up
            if time.monotonic() > warm_by or not any(p.is_alive() for p in ingest):
                raise SystemExit(
                    f"email ingest filed {filed.value} messages in 2 minutes: it is failing "
                    "(run bench/ingest.py to see why)"
                )
            time.sleep(0.1)
        before, began = filed.value, time.perf_counter()
        time.sleep(options.ingest_alone_seconds)
        alone = (filed.value - before) / (time.perf_counter() - began)

        # One provider after the other, each while the mail is being filed.
        before, began = filed.value, time.perf_counter()
        loaded, loaded_errors = fire(port, pushes, count=options.pushes, threads=options.threads)
        results.update(summary("wechat_during_ingest", loaded, loaded_errors))
        loaded, loaded_errors = fire(port, calls, count=options.calls, threads=options.threads)
        results.update(summary("twilio_during_ingest", loaded, loaded_errors))
        during = (filed.value - before) / (time.perf_counter() - began)
        results["email_ingest_processes"] = options.ingest_processes
        results["email_ingest_messages_per_s_alone"] = round(alone, 1)
        results["email_ingest_messages_per_s_during_pushes"] = round(during, 1)
        results["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    finally:
        stop.set()
        for process in ingest:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        celery_app.control.purge()  # the pushes' tasks: filed below instead

    with tenancy.activate(tenant):
        # Filing what each channel stored, one delivery at a time as a worker takes them: the
        # channel's ingest rate and latency after the answer (the email's is bench/ingest.py).
        for prefix, channel, each in (
            ("wechat_pushes", "wechat", account),
            ("twilio_calls", "twilio", phone),
        ):
            stored = list(RawInbound.objects.filter(account=each).values_list("pk", flat=True))
            took = []
            for raw_id in stored:
                began = time.perf_counter()
                process_raw(raw_id)
                took.append(time.perf_counter() - began)
            results[f"{prefix}_stored"] = len(stored)
            if took:
                took.sort()
                results[f"{channel}_filing_messages_per_second"] = round(len(took) / sum(took), 1)
                results[f"{channel}_filing_p50_ms"] = round(1000 * percentile(took, 0.50), 1)
                results[f"{channel}_filing_p95_ms"] = round(1000 * percentile(took, 0.95), 1)
        results["wechat_messages_filed"] = Message.objects.filter(channel_account=account).count()
        for prefix, each in (("wechat", account), ("twilio", phone)):
            results[f"{prefix}_failed"] = RawInbound.objects.filter(
                account=each, state=RawInbound.State.FAILED
            ).count()
    if not options.keep:
        delete_bench_data(tenant)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000, help="WeChat pushes in each phase")
    parser.add_argument(
        "--calls", type=int, help="Twilio call webhooks in each phase (default: --pushes)"
    )
    parser.add_argument("--warmup", type=int, default=100, help="pushes before measuring")
    parser.add_argument(
        "--threads", type=int, default=1, help="connections posting pushes at the same time"
    )
    parser.add_argument("--customers", type=int, default=500, help="distinct followers")
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=os.cpu_count() or 2,
        help="email ingest processes, each as fast as it can (default: one per CPU)",
    )
    parser.add_argument(
        "--ingest-alone-seconds",
        type=float,
        default=15,
        help="how long email ingest is timed alone, before the pushes",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench merchant's data")
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.calls is None:
        options.calls = options.pushes
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
