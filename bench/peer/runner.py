"""The peer side of bench/peer.py: django-helpdesk 2.6.1 ingesting the benchmark's mail and
listing tickets.

Run by the peer's own virtualenv (``.bench/peer-venv/bin/python bench/peer/runner.py``), never by
the project's: it imports only django-helpdesk and the standard library. Three commands:

- ``setup --seed-tickets N``: migrate the peer database, create the bench queue and its staff,
  and seed it up to N tickets spread over two years with bench/generate.py's status mix (most
  closed or resolved, a few percent open), each with the submitter's first follow-up carrying a
  Message-ID, in batches of ``bulk_create``. A second run seeds only what is missing.
- ``round --mails IN --out OUT``: ingest the round's mails one at a time through what
  django-helpdesk's mail fetcher (``get_email``, ``helpdesk.email.imap_sync``) runs per message,
  ``force_str`` of the fetched bytes and ``extract_email_metadata``; time each call; then read
  back what every mail became, for the driver's correctness checks.
- ``list --runs N --search WORD``: the staff ticket list as a signed-in staff member's browser
  loads it, through Django's test client: the page (``/tickets/``, its default filter) and the
  DataTables request the page makes to fill its table (``datatables_ticket_list``, first page),
  then the same for a keyword search (``?q=WORD``); each timed ``N`` times after one warm-up.

Progress goes to stderr; the result is JSON, written to ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

# The repository root holds the project's own ``helpdesk`` package: keep it off the path, so
# ``helpdesk`` is django-helpdesk.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE.parents[1]]
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # bench/dbtime.py, shared with the project's side
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_settings")

import django  # noqa: E402

django.setup()

from dbtime import DatabaseClock  # noqa: E402  (bench/dbtime.py)
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core import mail as django_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import encoding, timezone  # noqa: E402
from helpdesk.email import HTML_EMAIL_ATTACHMENT_FILENAME, extract_email_metadata  # noqa: E402
from helpdesk.exceptions import (  # noqa: E402
    DeleteIgnoredTicketException,
    IgnoreTicketException,
)
from stats import percentile  # noqa: E402  (bench/stats.py)

from helpdesk.models import FollowUp, FollowUpAttachment, Queue, Ticket  # noqa: E402

QUEUE_SLUG = "bench"
# The queue's title names the seeding, so a database seeded the earlier way (six months, a third
# of the tickets open) is seeded again rather than listed as if it were comparable.
QUEUE_TITLE = "Bench (two years, generate.py's statuses)"
SUPPORT_ADDRESS = "support@bench.example"
PLACEHOLDER = re.compile(rb"@@(TOKEN|MSGID|ADDR):([sm])(\d+)@@")
SEED_BATCH = 5_000
SEED_DOMAIN = "@peer.bench.example"
# As bench/generate.py: two years of tickets, created in number order.
SEED_DAYS = 730
STAFF_USERNAME = "bench-staff"  # who lists the tickets
AGENTS = 10  # staff the seeded tickets are assigned to
PRODUCTS = ["吸油烟机", "燃气灶", "电水壶", "洗碗机", "消毒柜", "电饭煲", "空气炸锅", "热水器"]
# The first messages of bench/generate.py's tickets (INBOUND_ZH, INBOUND_EN), so a word such as
# 破损 is about as frequent here as in the project's bench merchant.
INBOUND = [
    "您好，我买的{product}有问题，订单号{order}，麻烦尽快处理。",
    "{product}收到了，但是外包装破损，里面也有划痕。",
    "请问{product}什么时候能发货？已经等了一周了。",
    "{product}用了三天就坏了，希望退换。",
    "想咨询一下{product}的安装和保修。",
    "{product}的退款还没到账，订单{order}，有事请打我电话{phone}。",
    "Hello, my {product} (order {order}) has a problem, please help.",
    "The {product} arrived with a cracked panel.",
    "When will my {product} ship? It has been a week.",
    "How do I get the {product} installed?",
    "I was told the {product} would be refunded, call me on {phone}.",
]
PRIORITIES = ([4, 3, 2, 1], [15, 60, 20, 5])  # low, normal, high, critical as generate.py's


def bench_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(
        slug=QUEUE_SLUG,
        defaults={
            "title": QUEUE_TITLE,
            "email_address": SUPPORT_ADDRESS,
            "allow_email_submission": True,
            "email_box_type": "imap",
        },
    )
    return queue


def seeded_tickets(queue: Queue) -> QuerySet[Ticket]:
    """The seeded tickets (``seed<k>@peer.bench.example``), not those the rounds made."""
    return Ticket.objects.filter(queue=queue, submitter_email__endswith=SEED_DOMAIN)


def bench_staff() -> tuple[object, list[object]]:
    """The staff member who lists the tickets and the agents the tickets are assigned to."""
    users = get_user_model().objects
    lister, _ = users.get_or_create(
        username=STAFF_USERNAME, defaults={"is_staff": True, "email": "staff@bench.example"}
    )
    agents = [
        users.get_or_create(
            username=f"bench-agent-{n}",
            defaults={"is_staff": True, "email": f"agent{n}@bench.example"},
        )[0]
        for n in range(AGENTS)
    ]
    return lister, agents


def seeded_status(rng: random.Random, created: datetime, now: datetime) -> tuple[int, bool]:
    """A seeded ticket's status and on-hold flag for its age, in bench/generate.py's mix:
    older than two weeks 55% closed, 40% solved, 5% waiting; younger, more open. New, open and
    pending become Open (django-helpdesk has no pending), on hold Open and held, solved
    Resolved; a ticket is closed three days after it was solved, so not before."""
    age = now - created
    if age > timedelta(days=14):
        status = rng.choices(["closed", "solved", "pending", "on_hold"], [55, 40, 3, 2])[0]
    elif age > timedelta(days=2):
        statuses = ["solved", "closed", "open", "pending", "on_hold"]
        status = rng.choices(statuses, [50, 20, 15, 10, 5])[0]
    else:
        status = rng.choices(["new", "open", "pending", "solved"], [25, 40, 15, 20])[0]
    if status == "closed":
        solved = created + timedelta(hours=rng.uniform(1, 120))
        status = "closed" if solved + timedelta(days=3) < now else "solved"
    if status == "closed":
        return Ticket.CLOSED_STATUS, False
    if status == "solved":
        return Ticket.RESOLVED_STATUS, False
    return Ticket.OPEN_STATUS, status == "on_hold"


@contextmanager
def dates_as_given() -> Iterator[None]:
    """Let ``bulk_create`` write a ticket's ``created`` and ``modified`` as given: they are
    ``auto_now_add`` and ``auto_now``, which would date every seeded ticket today."""
    fields = [Ticket._meta.get_field("created"), Ticket._meta.get_field("modified")]
    saved = [(field.auto_now, field.auto_now_add) for field in fields]
    for field in fields:
        field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, (auto_now, auto_now_add) in zip(fields, saved, strict=True):
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def seed(queue: Queue, target: int) -> int:
    """Seed the queue up to ``target`` tickets; the tickets written. Ticket ``k`` is created at
    ``k / target`` of the way through the last two years."""
    if queue.title != QUEUE_TITLE:
        stale = seeded_tickets(queue)
        print(f"peer: re-seeding ({stale.count():,} tickets seeded the old way)", file=sys.stderr)
        FollowUp.objects.filter(ticket__in=stale).delete()
        stale.delete()
        queue.title = QUEUE_TITLE
        queue.save(update_fields=["title"])
    _lister, agents = bench_staff()
    have = seeded_tickets(queue).count()
    now = timezone.now()
    first = now - timedelta(days=SEED_DAYS)
    span = timedelta(days=SEED_DAYS) / target
    written = 0
    for start in range(have + 1, target + 1, SEED_BATCH):
        numbers = range(start, min(start + SEED_BATCH, target + 1))
        rng = random.Random(f"peer-seed:{start}")
        created = [min(first + span * k, now - timedelta(minutes=1)) for k in numbers]
        products = [rng.choice(PRODUCTS) for _k in numbers]
        texts = [
            rng.choice(INBOUND).format(product=product, order=f"SO{k:08d}", phone=f"138{k:08d}")
            for k, product in zip(numbers, products, strict=True)
        ]
        states = [seeded_status(rng, at, now) for at in created]
        with dates_as_given():
            tickets = Ticket.objects.bulk_create(
                Ticket(
                    title=f"{product} #{k}",
                    queue=queue,
                    created=at,
                    modified=at,
                    submitter_email=f"seed{k}{SEED_DOMAIN}",
                    status=status,
                    on_hold=on_hold,
                    assigned_to=rng.choice(agents) if rng.random() < 0.9 else None,
                    description=text,
                    priority=rng.choices(*PRIORITIES)[0],
                )
                for k, at, product, text, (status, on_hold) in zip(
                    numbers, created, products, texts, states, strict=True
                )
            )
        FollowUp.objects.bulk_create(
            FollowUp(
                ticket=ticket,
                title=f"E-Mail Received from seed{k}@peer.bench.example",
                date=at,
                public=True,
                comment=text,
                message_id=f"<{k}.peer@seed.bench.example>",
            )
            for k, ticket, at, text in zip(numbers, tickets, created, texts, strict=True)
        )
        written += len(numbers)
        print(f"peer: seeded {have + written:,} of {target:,} tickets", file=sys.stderr)
    return written


def ensure_database() -> None:
    """Create the peer's database on the shared PostgreSQL when it is missing."""
    import psycopg
    from psycopg import sql

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        print(f"peer: created database {db['NAME']}", file=sys.stderr)


def setup(seed_tickets: int) -> dict[str, object]:
    started = time.perf_counter()
    ensure_database()
    call_command("migrate", verbosity=0, interactive=False)
    queue = bench_queue()
    seed_started = time.perf_counter()
    written = seed(queue, seed_tickets)
    seed_seconds = time.perf_counter() - seed_started
    if written:  # the planner's statistics, as bench/generate.py's ANALYZE after its rows
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE helpdesk_ticket, helpdesk_followup")
    return {
        "tickets": seeded_tickets(queue).count(),
        "seeded": written,
        "seed_seconds": round(seed_seconds, 2),
        "seed_tickets_per_second": round(written / seed_seconds) if written else 0,
        "setup_seconds": round(time.perf_counter() - started, 1),
    }


class Resolver:
    """Fills a mail's placeholders as the peer would see them: ``s<k>`` is the k-th seeded
    ticket (any status: the peer reopens a closed one), ``m<i>`` the ticket the round's
    mail ``i`` became."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.landed: dict[int, int | None] = {}
        self.seeded: dict[str, int] = {}
        self.tickets: dict[int, Ticket] = {}
        self.seed_ids: dict[str, int] = {}

    def seeded_ticket(self, k: int) -> Ticket:
        if k in self.tickets:
            return self.tickets[k]
        if not self.seed_ids:  # one read of every seeded ticket's id, not a scan per reply
            self.seed_ids = dict(seeded_tickets(self.queue).values_list("submitter_email", "id"))
        ticket_id = self.seed_ids.get(f"seed{k}{SEED_DOMAIN}")
        ticket = Ticket.objects.filter(id=ticket_id).first() if ticket_id else None
        if ticket is None:
            raise SystemExit(f"peer: seeded ticket {k} is missing: run setup")
        self.seeded[f"s{k}"] = ticket.id
        self.tickets[k] = ticket
        return ticket

    def value(self, what: bytes, kind: bytes, number: int) -> bytes:
        if kind == b"m":
            ticket_id = self.landed.get(number)
            return f"[{self.queue.slug}-{ticket_id}]".encode()
        ticket = self.seeded_ticket(number)
        if what == b"TOKEN":
            return f"[{self.queue.slug}-{ticket.id}]".encode()
        if what == b"ADDR":
            return ticket.submitter_email.encode()
        first = FollowUp.objects.filter(ticket=ticket).order_by("id").first()
        return (first.message_id if first else "").strip("<>").encode()

    def fill(self, raw: bytes) -> bytes:
        return PLACEHOLDER.sub(lambda m: self.value(m[1], m[2], int(m[3])), raw)


def ingest_round(mails: list[dict[str, object]]) -> dict[str, object]:
    queue = bench_queue()
    # As get_email does for a queue whose logging_type is "none": log to nowhere.
    logger = logging.getLogger(f"django.helpdesk.queue.{queue.slug}")
    logger.handlers = []
    logger.propagate = False
    resolver = Resolver(queue)
    clock = DatabaseClock()
    latencies: list[float] = []
    cpu = 0.0
    failed = 0
    landed: list[int | None] = []
    sent = 0
    errors: list[str] = []
    for index, mail in enumerate(mails):
        raw = resolver.fill(base64.b64decode(str(mail["raw"])))
        cpu_started = time.process_time()
        started = time.perf_counter()
        try:
            with clock.timing(connection):
                # What imap_sync runs per fetched message.
                full_message = encoding.force_str(raw, errors="replace")
                ticket = extract_email_metadata(message=full_message, queue=queue, logger=logger)
        except (IgnoreTicketException, DeleteIgnoredTicketException):
            ticket = None
        except Exception as exc:  # a broken message must not stop the round; it is counted
            errors.append(f"mail {index} ({mail['kind']}): {type(exc).__name__}: {exc}")
            ticket = None
        latencies.append(time.perf_counter() - started)
        cpu += time.process_time() - cpu_started
        failed += ticket is None
        resolver.landed[index] = ticket.id if ticket else None
        landed.append(ticket.id if ticket else None)
        outbox = getattr(django_mail, "outbox", [])  # the acknowledgements it sent
        sent += len(outbox)
        outbox.clear()
    return {
        "side": "peer",
        "latencies": latencies,
        "cpu_seconds": cpu,
        "db_seconds": clock.seconds,
        "db_statements": clock.statements,
        "failed": failed,
        "errors": errors[:20],
        "mails_sent": sent,
        "records": records(mails, landed),
        "seeded": resolver.seeded,
    }


def records(mails: list[dict[str, object]], landed: list[int | None]) -> list[dict[str, object]]:
    """What each mail became, read back after the timed loop."""
    titles = dict(Ticket.objects.filter(id__in=[t for t in landed if t]).values_list("id", "title"))
    out: list[dict[str, object]] = []
    for mail, ticket_id in zip(mails, landed, strict=True):
        followup = (
            FollowUp.objects.filter(ticket_id=ticket_id, message_id=f"<{mail['message_id']}>")
            .order_by("-id")
            .first()
            if ticket_id
            else None
        )
        attachments = (
            FollowUpAttachment.objects.filter(followup=followup)
            .exclude(filename=HTML_EMAIL_ATTACHMENT_FILENAME)
            .count()
            if followup
            else 0
        )
        out.append(
            {
                "ticket": ticket_id if followup else None,
                # The peer keeps a mail's subject only as a new ticket's title.
                "subject": titles.get(ticket_id, "") if ticket_id else "",
                "body": followup.comment if followup else "",
                "attachments": attachments,
            }
        )
    return out


# -- the ticket list ---------------------------------------------------------------------------

TABLE_URL = re.compile(r"[\"'](/helpdesk/datatables_ticket_list/[A-Za-z0-9+/=_-]+)[\"']")
PAGE_LENGTH = re.compile(r"data-page-length=['\"](\d+)['\"]")


class StatementCounter:
    """A database execute wrapper counting the statements of one request."""

    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.statements += 1
        return execute(sql, params, many, context)


def fetch(client: Client, url: str) -> bytes:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"peer: {url} answered {response.status_code}")
    return response.content


def table_request(page: str) -> str:
    """The request the list page's DataTables makes to fill its table on load: the
    ``datatables_ticket_list`` URL the page holds (its filter, base64), first page of the
    page's own length, no column order (the template sets ``order: []``, so the view's
    default, by created), as the browser sends it."""
    url, length = TABLE_URL.search(page), PAGE_LENGTH.search(page)
    if url is None or length is None:
        raise SystemExit("peer: the list page has no DataTables URL or page length")
    query = {
        "draw": "1",
        "start": "0",
        "length": length[1],
        "search[value]": "",
        "search[regex]": "false",
    }
    return f"{url[1]}?{urlencode(query)}"


def measure_list(client: Client, name: str, url: str, runs: int) -> dict[str, object]:
    """The list page at ``url`` and the table request it makes: statements of each, then
    ``runs`` timed pairs after one warm-up; p50 and p95 of the page, of the table request and
    of the two together (what the person waits for)."""
    data_url = table_request(fetch(client, url).decode())
    rows = json.loads(fetch(client, data_url))["recordsFiltered"]
    counts = []
    for each in (url, data_url):
        counter = StatementCounter()
        with connection.execute_wrapper(counter):
            fetch(client, each)
        counts.append(counter.statements)
    page, table, both = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        fetch(client, url)
        middle = time.perf_counter()
        fetch(client, data_url)
        ended = time.perf_counter()
        page.append(middle - started)
        table.append(ended - middle)
        both.append(ended - started)
    figures: dict[str, object] = {f"{name}_rows": rows}
    for part, seconds, statements in (
        ("", both, sum(counts)),
        ("_page", page, counts[0]),
        ("_data", table, counts[1]),
    ):
        seconds.sort()
        figures[f"{name}{part}_p50_ms"] = round(percentile(seconds, 0.50) * 1000, 1)
        figures[f"{name}{part}_p95_ms"] = round(percentile(seconds, 0.95) * 1000, 1)
        figures[f"{name}{part}_queries"] = statements
    return figures


def list_tickets(runs: int, search: str) -> dict[str, object]:
    """The staff member's ticket list and a keyword search, as :func:`measure_list` times
    them; with the queue's size."""
    lister, _agents = bench_staff()
    client = Client()
    client.force_login(lister)
    queue = bench_queue()
    figures: dict[str, object] = {
        "tickets": Ticket.objects.filter(queue=queue).count(),
        "open_tickets": Ticket.objects.filter(
            queue=queue, status__in=[Ticket.OPEN_STATUS, Ticket.REOPENED_STATUS]
        ).count(),
    }
    figures |= measure_list(client, "list", "/helpdesk/tickets/", runs)
    figures |= measure_list(client, "search", f"/helpdesk/tickets/?q={quote(search)}", runs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="migrate and seed the peer database")
    setup_parser.add_argument("--seed-tickets", type=int, required=True)
    setup_parser.add_argument("--out", type=Path, required=True)
    round_parser = commands.add_parser("round", help="ingest one round of mail")
    round_parser.add_argument("--mails", type=Path, required=True)
    round_parser.add_argument("--out", type=Path, required=True)
    list_parser = commands.add_parser("list", help="time the staff ticket list and a search")
    list_parser.add_argument("--runs", type=int, required=True)
    list_parser.add_argument("--search", required=True)
    list_parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    if options.command == "list":
        options.out.write_text(json.dumps(list_tickets(options.runs, options.search)))
        return
    if options.command == "setup":
        options.out.write_text(json.dumps(setup(options.seed_tickets)))
        return
    mails = json.loads(options.mails.read_text())["mails"]
    options.out.write_text(json.dumps(ingest_round(mails)))


if __name__ == "__main__":
    main()
