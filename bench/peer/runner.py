"""The peer side of bench/peer.py: django-helpdesk 2.6.1 ingesting the benchmark's mail.

Run by the peer's own virtualenv (``.bench/peer-venv/bin/python bench/peer/runner.py``), never by
the project's: it imports only django-helpdesk and the standard library. Two commands:

- ``setup --seed-tickets N``: migrate the peer database, create the bench queue and seed it up to
  N tickets, each with the submitter's first follow-up carrying a Message-ID, in batches of
  ``bulk_create``. A second run seeds only what is missing.
- ``round --mails IN --out OUT``: ingest the round's mails one at a time through what
  django-helpdesk's mail fetcher (``get_email``, ``helpdesk.email.imap_sync``) runs per message,
  ``force_str`` of the fetched bytes and ``extract_email_metadata``; time each call; then read
  back what every mail became, for the driver's correctness checks.

Progress goes to stderr; the result is JSON, written to ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import sys
import time
from datetime import timedelta
from pathlib import Path

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
from django.core import mail as django_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.utils import encoding, timezone  # noqa: E402
from helpdesk.email import HTML_EMAIL_ATTACHMENT_FILENAME, extract_email_metadata  # noqa: E402
from helpdesk.exceptions import (  # noqa: E402
    DeleteIgnoredTicketException,
    IgnoreTicketException,
)

from helpdesk.models import FollowUp, FollowUpAttachment, Queue, Ticket  # noqa: E402

QUEUE_SLUG = "bench"
SUPPORT_ADDRESS = "support@bench.example"
PLACEHOLDER = re.compile(rb"@@(TOKEN|MSGID|ADDR):([sm])(\d+)@@")
SEED_BATCH = 5_000
SEED_DOMAIN = "@peer.bench.example"


def bench_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(
        slug=QUEUE_SLUG,
        defaults={
            "title": "Bench",
            "email_address": SUPPORT_ADDRESS,
            "allow_email_submission": True,
            "email_box_type": "imap",
        },
    )
    return queue


def seeded_tickets(queue: Queue) -> QuerySet[Ticket]:
    """The seeded tickets (``seed<k>@peer.bench.example``), not those the rounds made."""
    return Ticket.objects.filter(queue=queue, submitter_email__endswith=SEED_DOMAIN)


def seed(queue: Queue, target: int) -> int:
    """Seed the queue up to ``target`` tickets; the tickets written."""
    have = seeded_tickets(queue).count()
    statuses = [Ticket.OPEN_STATUS, Ticket.REOPENED_STATUS, Ticket.RESOLVED_STATUS]
    statuses += [Ticket.CLOSED_STATUS] * 3
    now = timezone.now()
    written = 0
    for start in range(have + 1, target + 1, SEED_BATCH):
        numbers = range(start, min(start + SEED_BATCH, target + 1))
        created = [now - timedelta(days=180) + timedelta(seconds=150 * k) for k in numbers]
        tickets = Ticket.objects.bulk_create(
            Ticket(
                title=f"Seeded ticket {k}: order SO{k:08d}",
                queue=queue,
                created=at,
                modified=at,
                submitter_email=f"seed{k}{SEED_DOMAIN}",
                status=statuses[k % len(statuses)],
                description=f"Hello, my order SO{k:08d} has not arrived.",
                priority=3,
            )
            for k, at in zip(numbers, created, strict=True)
        )
        FollowUp.objects.bulk_create(
            FollowUp(
                ticket=ticket,
                title=f"E-Mail Received from seed{k}@peer.bench.example",
                date=at,
                public=True,
                comment=f"Hello, my order SO{k:08d} has not arrived.",
                message_id=f"<{k}.peer@seed.bench.example>",
            )
            for k, ticket, at in zip(numbers, tickets, created, strict=True)
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
    written = seed(queue, seed_tickets)
    return {
        "tickets": seeded_tickets(queue).count(),
        "seeded": written,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="migrate and seed the peer database")
    setup_parser.add_argument("--seed-tickets", type=int, required=True)
    setup_parser.add_argument("--out", type=Path, required=True)
    round_parser = commands.add_parser("round", help="ingest one round of mail")
    round_parser.add_argument("--mails", type=Path, required=True)
    round_parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    if options.command == "setup":
        options.out.write_text(json.dumps(setup(options.seed_tickets)))
        return
    mails = json.loads(options.mails.read_text())["mails"]
    options.out.write_text(json.dumps(ingest_round(mails)))


if __name__ == "__main__":
    main()
