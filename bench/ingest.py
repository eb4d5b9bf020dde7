"""End-to-end inbound mail ingest benchmark: raw bytes in, tickets, messages and attachments out.

Run from the repository root: ``python bench/ingest.py`` (``make bench-ingest`` runs it on
PostgreSQL as the app's role). It creates a bench merchant with an email channel, generates a
realistic mix of mail and times ``store_raw`` + ``process_raw`` for every message, counts the SQL
statements of one message, then compares the throughput of 1 and of several worker processes
sharing one merchant. Results go to stdout as ``name: value`` lines; progress and log messages go
to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Barrier

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
# Attachments land on disk: keep them out of the repository's media folder.
OWN_MEDIA_ROOT = not os.environ.get("MEDIA_ROOT")
if OWN_MEDIA_ROOT:
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="helpdesk-bench-media-")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.files import pdf, png  # noqa: E402
from bench.results import add_json_argument, write_json  # noqa: E402
from bench.stats import percentile  # noqa: E402
from channels_in.base import AdapterError, Envelope  # noqa: E402
from channels_in.models import ChannelAccount, Mailbox, RawInbound  # noqa: E402
from channels_in.pipeline import process_raw, store_raw  # noqa: E402
from escalation.models import Escalation  # noqa: E402
from helpdesk import tenancy  # noqa: E402
from helpdesk.models import Tenant  # noqa: E402
from tickets.models import (  # noqa: E402
    Attachment,
    Channel,
    Customer,
    CustomerIdentity,
    Group,
    Message,
    Ticket,
)

CORPUS_DIR = Path(os.environ.get("HELPDESK_CORPUS_DIR") or REPO / "tests" / "corpus" / "mail")
SUPPORT_ADDRESS = "support@bench.example"

# The mix of a Chinese e-commerce merchant's support inbox (weights sum to 1).
MIX = {
    "chinese": 0.40,  # GBK / GB2312-labelled plain text, as Foxmail and NetEase send it
    "html": 0.20,  # HTML only, an inline logo, a PDF or PNG attachment
    "english": 0.20,  # plain English
    "reply": 0.10,  # In-Reply-To an earlier generated message: threads onto its ticket
    "corpus": 0.10,  # real-world mail from the corpus, Message-ID made unique
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]
FIRST_NAMES = ["Emily", "James", "Olivia", "Liam", "Sophia", "Noah", "Ava", "Lucas", "Mia", "Ethan"]
LAST_NAMES = ["Carter", "Smith", "Brown", "Nguyen", "Garcia", "Miller", "Davis", "Wilson", "Moore"]
PRODUCTS_ZH = ["吸油烟机", "燃气灶", "电水壶", "洗碗机", "消毒柜", "电饭煲", "空气炸锅", "热水器"]
PRODUCTS_EN = ["range hood", "gas hob", "kettle", "dishwasher", "rice cooker", "air fryer"]
SUBJECTS_ZH = [
    "订单号 {order} 的{product}还没到货",
    "{product}安装后噪音很大",
    "申请退款：订单 {order}",
    "{product}收到时外壳有破损",
    "请问{product}怎么清洗",
    "发票开具问题（订单 {order}）",
]
SENTENCES_ZH = [
    "您好，我上周在贵店购买了一台{product}，订单号是{order}。",
    "快递显示已经签收，但是我并没有收到包裹，麻烦帮忙查一下物流。",
    "机器用了三天就出现异响，声音非常大，影响正常使用。",
    "请问可以上门维修吗？我周末都在家。",
    "如果不能维修，希望能够退货退款，谢谢！",
    "附件是商品的照片，请客服尽快处理。",
    "另外想问一下保修期是多久，需要保留发票吗？",
    "我已经等了很久了，希望今天能给我一个答复。",
]
SUBJECTS_EN = [
    "Where is my order {order}?",
    "The {product} arrived damaged",
    "Refund request for order {order}",
    "How do I clean the {product}?",
    "Question about the warranty",
]
SENTENCES_EN = [
    "Hello, I bought a {product} from your shop last week (order {order}).",
    "The tracking page says it was delivered, but nothing arrived.",
    "It makes a loud rattling noise whenever I switch it on.",
    "Could you send a technician, or should I return it?",
    "I would prefer a refund if a repair takes more than a week.",
    "Thanks in advance for your help.",
    "Best regards,",
]


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    chinese: bool


@dataclass(frozen=True)
class Sent:
    """A generated message a later one may reply to."""

    message_id: str
    subject: str
    sender: Sender
    charset: str
    text: str


_MESSAGE_ID_HEADER = re.compile(rb"(?im)^message-id:[^\n]*\n(?:[ \t][^\n]*\n)*")


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """The mail with its Message-ID header replaced (or added) in its header block."""
    split = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: split.end()], raw[split.end() :]) if split else (raw, b"")
    newline = b"\r\n" if b"\r\n" in head[:2000] else b"\n"
    replacement = b"Message-ID: <" + message_id.encode() + b">" + newline
    head, found = _MESSAGE_ID_HEADER.subn(lambda _: replacement, head, count=1)
    if not found:
        # After an mbox "From " line, if any, so the mail still reads as an mbox message.
        if head.startswith(b"From "):
            first_end = head.index(b"\n") + 1
            head = head[:first_end] + replacement + head[first_end:]
        else:
            head = replacement + head
    return head + body


class MailMix:
    """Generates the benchmark's mail, deterministically for a given seed."""

    def __init__(self, *, seed: int, customers: int, run: str) -> None:
        self.rng = random.Random(seed)
        self.run = run
        self.customers = [self._customer(number) for number in range(customers)]
        self.sent: list[Sent] = []
        self.logos = [png(16, 16, self.rng) for _ in range(4)]
        self.photos = [png(36, 36, self.rng) for _ in range(4)]
        self.corpus = [path.read_bytes() for path in sorted((CORPUS_DIR / "zammad").glob("*.box"))]
        if not self.corpus:
            raise SystemExit(f"no corpus mail in {CORPUS_DIR / 'zammad'}: set HELPDESK_CORPUS_DIR")
        self.counter = 0

    def _customer(self, number: int) -> Sender:
        rng = self.rng
        if number % 5 < 3:  # three in five customers write in Chinese
            name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice([1, 2])))
            return Sender(name, f"kehu{number:05d}@mail.bench.cn", True)
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        return Sender(name, f"customer{number:05d}@mail.bench.example", False)

    def _next_id(self) -> str:
        self.counter += 1
        return f"{self.run}.{self.counter}@mail.bench.example"

    def _order(self) -> str:
        return f"SO2026{self.rng.randrange(100000):05d}"

    def _pick_customer(self, *, chinese: bool | None) -> Sender:
        while True:
            customer = self.rng.choice(self.customers)
            if chinese is None or customer.chinese == chinese:
                return customer

    def messages(self, count: int) -> Iterator[tuple[str, bytes]]:
        kinds = list(MIX)
        weights = list(MIX.values())
        for _ in range(count):
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "reply" and not self.sent:
                kind = "english"
            yield kind, getattr(self, f"_{kind}")()

    def _text_mail(
        self,
        *,
        sender: Sender,
        subject: str,
        text: str,
        charset: str,
        reply_to: Sent | None = None,
    ) -> bytes:
        message_id = self._next_id()
        mail = MIMEText(text, "plain", charset)
        mail["From"] = formataddr((sender.name, sender.address), charset=charset)
        mail["To"] = SUPPORT_ADDRESS
        mail["Subject"] = Header(subject, charset).encode()
        mail["Date"] = format_datetime(timezone.now())
        mail["Message-ID"] = f"<{message_id}>"
        if reply_to is not None:
            mail["In-Reply-To"] = f"<{reply_to.message_id}>"
            mail["References"] = f"<{reply_to.message_id}>"
        self.sent.append(Sent(message_id, subject, sender, charset, text))
        return mail.as_bytes()

    def _chinese(self) -> bytes:
        sender = self._pick_customer(chinese=True)
        fill = {"order": self._order(), "product": self.rng.choice(PRODUCTS_ZH)}
        subject = self.rng.choice(SUBJECTS_ZH).format(**fill)
        sentences = self.rng.sample(SENTENCES_ZH, self.rng.randint(2, 5))
        text = "\n".join(s.format(**fill) for s in sentences) + f"\n\n{sender.name}\n"
        charset = self.rng.choice(["gbk", "gb2312"])
        try:
            (subject + text + sender.name).encode(charset)
        except UnicodeEncodeError:
            charset = "gbk"
        return self._text_mail(sender=sender, subject=subject, text=text, charset=charset)

    def _english(self) -> bytes:
        sender = self._pick_customer(chinese=False)
        fill = {"order": self._order(), "product": self.rng.choice(PRODUCTS_EN)}
        subject = self.rng.choice(SUBJECTS_EN).format(**fill)
        sentences = self.rng.sample(SENTENCES_EN[:-2], self.rng.randint(2, 4)) + SENTENCES_EN[-2:]
        text = "\n".join(s.format(**fill) for s in sentences) + f"\n{sender.name}\n"
        return self._text_mail(sender=sender, subject=subject, text=text, charset="utf-8")

    def _reply(self) -> bytes:
        earlier = self.rng.choice(self.sent[-500:])
        chinese = earlier.sender.chinese
        text = (
            ("请问有进展了吗？我还在等待回复。" if chinese else "Any news on this? Still waiting.")
            + "\n\n"
            + "\n".join(f"> {line}" for line in earlier.text.splitlines())
        )
        prefix = "回复：" if chinese else "Re: "
        return self._text_mail(
            sender=earlier.sender,
            subject=prefix + earlier.subject.removeprefix(prefix),
            text=text,
            charset=earlier.charset,
            reply_to=earlier,
        )

    def _html(self) -> bytes:
        sender = self._pick_customer(chinese=None)
        order = self._order()
        message_id = self._next_id()
        if sender.chinese:
            subject = f"订单 {order} 商品照片"
            lines = ["您好，商品收到时包装破损，照片见附件。", f"订单号：{order}", sender.name]
        else:
            subject = f"Photos for order {order}"
            lines = ["Hello, the parcel arrived crushed; photos attached.", f"Order: {order}"]
        paragraphs = "".join(f"<p>{line}</p>" for line in lines)
        html = (
            '<html><body><div style="font-family: sans-serif">'
            f'{paragraphs}<p><img src="cid:logo-{self.counter}" alt="logo"></p>'
            "</div></body></html>"
        )
        mail = EmailMessage()
        mail["From"] = formataddr((sender.name, sender.address))
        mail["To"] = SUPPORT_ADDRESS
        mail["Subject"] = subject
        mail["Date"] = format_datetime(timezone.now())
        mail["Message-ID"] = f"<{message_id}>"
        mail.set_content(html, subtype="html")
        mail.add_related(
            self.rng.choice(self.logos),
            maintype="image",
            subtype="png",
            cid=f"<logo-{self.counter}>",
            filename="logo.png",
            disposition="inline",
        )
        if self.rng.random() < 0.5:
            mail.add_attachment(
                pdf(f"Invoice {order}", self.rng),
                maintype="application",
                subtype="pdf",
                filename=f"invoice-{order}.pdf",
            )
        else:
            mail.add_attachment(
                self.rng.choice(self.photos), maintype="image", subtype="png", filename="photo.png"
            )
        self.sent.append(Sent(message_id, subject, sender, "utf-8", "\n".join(lines)))
        return mail.as_bytes()

    def _corpus(self) -> bytes:
        return with_message_id(self.rng.choice(self.corpus), self._next_id())


def bench_channel(slug: str) -> tuple[Tenant, ChannelAccount]:
    """The bench merchant, its email channel and its default group, created on first use."""
    tenant, _ = Tenant.objects.get_or_create(
        slug=slug, defaults={"name": f"Bench {slug}", "default_currency": "CNY"}
    )
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.filter(kind=Channel.EMAIL, name="Bench mail").first()
        if account is None:
            account = ChannelAccount.objects.create(kind=Channel.EMAIL, name="Bench mail")
            Mailbox.objects.create(account=account, address=SUPPORT_ADDRESS)
        # Like a real merchant's, new tickets are routed to a default group.
        if not Group.objects.filter(is_default=True).exists():
            Group.objects.create(name="Support", is_default=True)
    return tenant, account


def statements_of(account: ChannelAccount, payload: bytes) -> int:
    """SQL statements of the whole pipeline for one payload, as Django captures them: BEGIN,
    COMMIT, savepoints and the tenant's ``set_config`` included."""
    with CaptureQueriesContext(connection) as captured:
        raw, _ = store_raw(
            account=account, envelope=Envelope.of(payload), source=RawInbound.Source.IMPORT
        )
        result = process_raw(raw.pk)
    if result is None or result.state != RawInbound.State.PROCESSED:
        raise SystemExit(f"the statement probe was not processed: {result and result.error}")
    return len(captured.captured_queries)


def count_statements(account: ChannelAccount, mix: MailMix) -> dict[str, int]:
    """Statements for a new customer's first mail (a new ticket) and for their reply to it
    (threaded onto that ticket), on a merchant that already holds the run's data."""
    sender = Sender("Probe Customer", f"probe-{mix.run}@mail.bench.example", False)
    first = mix._text_mail(
        sender=sender,
        subject="Where is my order SO202612345?",
        text="Hello, my order SO202612345 has not arrived yet.\nBest regards,\nProbe",
        charset="utf-8",
    )
    reply = mix._text_mail(
        sender=sender,
        subject="Re: Where is my order SO202612345?",
        text="Any news on this?",
        charset="utf-8",
        reply_to=mix.sent[-1],
    )
    return {
        "ingest_sql_statements_per_message": statements_of(account, first),
        "ingest_sql_statements_per_reply": statements_of(account, reply),
    }


def _process_share(
    tenant: Tenant,
    raw_ids: list[int],
    next_index: Synchronized[int],
    failures: Synchronized[int],
    cpu: Synchronized[float],
    start: Barrier,
) -> None:
    """One worker process: takes the next stored payload until none is left, as Celery workers
    taking tasks from one queue would; adds the CPU time it used to ``cpu``."""
    try:
        with tenancy.activate(tenant):
            connection.ensure_connection()  # connecting is not part of the measured time
            start.wait()
            began = time.process_time()
            while True:
                with next_index.get_lock():
                    index = next_index.value
                    next_index.value += 1
                if index >= len(raw_ids):
                    break
                try:
                    result = process_raw(raw_ids[index])
                except Exception:  # the pipeline marked the raw failed and logged why
                    result = None
                if result is None or result.state == RawInbound.State.FAILED:
                    with failures.get_lock():
                        failures.value += 1
            with cpu.get_lock():
                cpu.value += time.process_time() - began
    finally:
        connections.close_all()


def _stored_payloads(
    slug: str, messages: int, options: argparse.Namespace
) -> tuple[Tenant, list[int]]:
    """A fresh bench merchant with ``messages`` generated payloads stored (not timed)."""
    tenant, account = bench_channel(slug)
    mix = MailMix(seed=options.seed, customers=options.customers, run=uuid.uuid4().hex[:12])
    raw_ids = []
    with tenancy.activate(tenant):
        for _kind, payload in mix.messages(messages):
            try:
                raw, _ = store_raw(
                    account=account, envelope=Envelope.of(payload), source=RawInbound.Source.IMPORT
                )
            except AdapterError:  # not mail at all: nothing was stored
                continue
            raw_ids.append(raw.pk)
    return tenant, raw_ids


@dataclass(frozen=True)
class WorkerRun:
    per_second: float
    failed: int
    cpu_seconds: float


def _run_processes(shares: list[tuple[Tenant, list[int]]], *, queues: int) -> WorkerRun:
    """One forked process per share, all started together; ``queues`` shares of the same list
    take from one counter (workers on one merchant), else each from its own."""
    # A forked child must not share the parent's database connection: each opens its own.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    counters = [context.Value("l", 0) for _ in range(queues)]
    failures = context.Value("l", 0)
    cpu = context.Value("d", 0.0)
    start = context.Barrier(len(shares) + 1)
    processes = [
        context.Process(
            target=_process_share,
            args=(tenant, raw_ids, counters[n % queues], failures, cpu, start),
        )
        for n, (tenant, raw_ids) in enumerate(shares)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    started = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    if any(process.exitcode for process in processes):
        raise SystemExit(f"a worker process of the {len(shares)}-process run died")
    total = len({raw_id for _tenant, raw_ids in shares for raw_id in raw_ids})
    return WorkerRun(total / elapsed if elapsed else 0.0, failures.value, cpu.value)


def measure_workers(
    slug: str, workers: int, *, messages: int, options: argparse.Namespace
) -> WorkerRun:
    """Messages per second (wall clock) of ``workers`` processes ingesting ``messages`` stored
    payloads of one fresh merchant. Every run gets the same mail."""
    tenant, raw_ids = _stored_payloads(slug, messages, options)
    return _run_processes([(tenant, raw_ids)] * workers, queues=1)


def measure_merchants(
    slug: str, merchants: int, *, messages: int, options: argparse.Namespace
) -> WorkerRun:
    """The same with one process per merchant: ``merchants`` fresh merchants, each with its
    share of ``messages``, processed at the same time."""
    shares = [
        _stored_payloads(f"{slug}-{n}", messages // merchants, options) for n in range(merchants)
    ]
    return _run_processes(shares, queues=merchants)


def delete_bench_data(tenant: Tenant) -> None:
    """Delete what the bench created for ``tenant``, children first (several FKs PROTECT)."""
    with tenancy.activate(tenant):
        for name in Attachment.objects.values_list("file", flat=True).iterator():
            default_storage.delete(name)
        for model in (
            RawInbound,
            Attachment,
            Message,
            Escalation,  # raised by the inbound triggers ("let me talk to a supervisor")
            Ticket,
            CustomerIdentity,
            Customer,
            Group,
            Mailbox,
            ChannelAccount,
        ):
            model.objects.all().delete()
    # The audit log is append-only (no DELETE policy), so the tenant row, which its rows point
    # to, stays; it is switched off instead.
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)


def run(options: argparse.Namespace) -> dict[str, object]:
    slug = options.tenant or f"bench-{time.strftime('%Y%m%d%H%M%S')}"
    tenant, account = bench_channel(slug)
    mix = MailMix(seed=options.seed, customers=options.customers, run=uuid.uuid4().hex[:12])
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    failed = 0
    states: dict[str, int] = {}
    with tenancy.activate(tenant):
        tickets_before = Ticket.objects.count()
        attachments_before = Attachment.objects.count()
        progress = tqdm(
            total=options.messages,
            unit="msg",
            file=sys.stderr,
            disable=True if options.no_progress else None,
        )
        with progress:
            for kind, payload in mix.messages(options.messages):
                started = time.perf_counter()
                try:
                    raw, _ = store_raw(
                        account=account,
                        envelope=Envelope.of(payload),
                        source=RawInbound.Source.IMPORT,
                    )
                    result = process_raw(raw.pk)
                except AdapterError:  # not mail at all: nothing was stored
                    result = None
                except Exception:  # the pipeline marked the raw failed and logged why
                    result = None
                elapsed = time.perf_counter() - started
                latencies.append(elapsed)
                by_kind.setdefault(kind, []).append(elapsed)
                state = result.state if result is not None else RawInbound.State.FAILED
                states[state] = states.get(state, 0) + 1
                failed += state == RawInbound.State.FAILED
                progress.update()
        tickets_created = Ticket.objects.count() - tickets_before
        attachments_created = Attachment.objects.count() - attachments_before
        statements = count_statements(account, mix)

    throughput: dict[str, float] = {}
    worker_counts = sorted({1, options.workers}) if options.workers else []
    worker_failed = 0
    for workers in worker_counts if options.worker_messages else []:
        measured = measure_workers(
            f"{slug}-w{workers}",
            workers,
            messages=options.worker_messages,
            options=options,
        )
        worker_failed += measured.failed
        noun = "worker" if workers == 1 else "workers"
        throughput[f"ingest_messages_per_second_{workers}_{noun}"] = round(measured.per_second, 1)
        throughput[f"ingest_cpu_seconds_{workers}_{noun}"] = round(measured.cpu_seconds, 1)
    if options.workers > 1 and options.worker_messages:
        measured = measure_merchants(
            f"{slug}-m", options.workers, messages=options.worker_messages, options=options
        )
        worker_failed += measured.failed
        merchants = f"{options.workers}_merchants"
        throughput[f"ingest_messages_per_second_{merchants}"] = round(measured.per_second, 1)
        throughput[f"ingest_cpu_seconds_{merchants}"] = round(measured.cpu_seconds, 1)
    if throughput:
        throughput["ingest_workers_failed"] = worker_failed

    if options.cleanup:
        # The worker runs' merchants too, also those of an earlier run given by --tenant.
        worker_slugs = [f"{slug}-w{workers}" for workers in worker_counts]
        worker_slugs += [f"{slug}-m-{n}" for n in range(options.workers)]
        for each in [tenant, *Tenant.objects.filter(slug__in=worker_slugs)]:
            delete_bench_data(each)
        if OWN_MEDIA_ROOT:
            shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)

    total = sum(latencies)
    ordered = sorted(latencies)
    per_kind = {
        f"ingest_latency_p50_ms_{kind}": round(percentile(sorted(by_kind[kind]), 0.50) * 1000, 1)
        for kind in MIX
        if kind in by_kind
    }
    return {
        "bench_tenant": slug,
        "database": connection.vendor,
        "media_root": settings.MEDIA_ROOT,
        "ingest_messages": len(latencies),
        "ingest_seconds": round(total, 1),
        "ingest_messages_per_second": round(len(latencies) / total, 1) if total else 0.0,
        "ingest_latency_p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
        "ingest_latency_p95_ms": round(percentile(ordered, 0.95) * 1000, 1),
        "ingest_latency_p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
        "ingest_latency_max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
        "ingest_processed": states.get(RawInbound.State.PROCESSED, 0),
        "ingest_ignored": states.get(RawInbound.State.IGNORED, 0),
        "ingest_duplicate": states.get(RawInbound.State.DUPLICATE, 0),
        "ingest_failed": failed,
        "tickets_created": tickets_created,
        "attachments_created": attachments_created,
        **per_kind,
        **statements,
        **throughput,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages to ingest")
    parser.add_argument("--customers", type=int, default=2_000, help="distinct senders")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated mix")
    parser.add_argument("--tenant", metavar="SLUG", help="reuse this bench merchant")
    parser.add_argument(
        "--cleanup", action="store_true", help="delete the bench merchant's data afterwards"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="compare 1 and this many worker processes on one merchant (0: skip)",
    )
    parser.add_argument(
        "--worker-messages",
        type=int,
        metavar="N",
        help="messages for each worker run (default: --messages)",
    )
    add_json_argument(parser)
    options = parser.parse_args(argv)
    if options.messages < 0 or options.customers < 1 or options.workers < 0:
        parser.error("--messages and --workers must be >= 0 and --customers >= 1")
    if options.worker_messages is None:
        options.worker_messages = options.messages
    figures = run(options)
    for name, value in figures.items():
        print(f"{name}: {value}")
    write_json(options.json, figures)


if __name__ == "__main__":
    main()
