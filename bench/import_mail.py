"""Archive import benchmark: ``import_mail`` of generated 5,000- and 50,000-message mboxes.

Run from the repository root: ``python bench/import_mail.py`` (``make bench-import`` runs it on
PostgreSQL as the app's role). For each size it writes an mbox of the ``bench.ingest`` mail mix
into a temporary folder (dates one minute apart, the file order shuffled within windows of 20 so
some replies come before the mail they answer), creates a fresh bench merchant, and runs the
``import_mail`` command in a fresh Python process, which reports its time and peak memory. It
then checks that every reply threaded onto the ticket of the mail it answers, and imports the
smallest archive a second time (all duplicates). Results go to stdout as ``name: value`` lines;
progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from io import StringIO
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
OWN_MEDIA_ROOT = not os.environ.get("MEDIA_ROOT")
if OWN_MEDIA_ROOT:  # attachments land on disk: keep them out of the repository's media folder
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="helpdesk-bench-import-media-")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from channels_in import archive_import  # noqa: E402
from helpdesk import tenancy  # noqa: E402

SHUFFLE_WINDOW = 20
_DATE_HEADER = re.compile(rb"(?im)^date:[^\n]*\n(?:[ \t][^\n]*\n)*")
_MBOX_ESCAPE = re.compile(rb"(?m)^(>*From )")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def with_date(raw: bytes, moment: datetime) -> bytes:
    """The mail with its Date header set to ``moment`` (added when it has none)."""
    split = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: split.end()], raw[split.end() :]) if split else (raw, b"")
    newline = b"\r\n" if b"\r\n" in head[:2000] else b"\n"
    header = b"Date: " + format_datetime(moment).encode() + newline
    head, found = _DATE_HEADER.subn(lambda _: header, head, count=1)
    return head + body if found else header + head + body


def write_mbox(path: Path, *, messages: int, seed: int) -> list[tuple[str, str]]:
    """Write ``messages`` generated mails as an mbox (mboxrd quoting); return the (reply,
    original) Message-ID pairs of its replies."""
    from bench.ingest import MailMix

    mix = MailMix(seed=seed, customers=max(200, messages // 5), run=f"imp{uuid.uuid4().hex[:8]}")
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    pairs: list[tuple[str, str]] = []
    window: list[bytes] = []
    with path.open("wb") as out:

        def flush() -> None:
            rng.shuffle(window)
            for mail in window:
                out.write(b"From import-bench@localhost Wed Jan  1 09:00:00 2025\n")
                out.write(_MBOX_ESCAPE.sub(rb">\1", mail.rstrip(b"\n")) + b"\n\n")
            window.clear()

        for number, (kind, raw) in enumerate(mix.messages(messages)):
            if raw.startswith(b"From "):  # a corpus mail saved with its own mbox line
                raw = raw.split(b"\n", 1)[1]
            if kind == "reply":
                reply = mix.sent[-1]
                original = re.search(rb"(?im)^in-reply-to:\s*<([^>]+)>", raw)
                if original is not None:
                    pairs.append((reply.message_id, original.group(1).decode()))
            window.append(with_date(raw, start + timedelta(minutes=number)))
            if len(window) == SHUFFLE_WINDOW:
                flush()
        flush()
    return pairs


def import_in_child(
    mbox: Path, *, tenant: str, channel: int, trace: bool, store_batch: int | None = None
) -> dict[str, object]:
    """Run the import in a fresh Python process, so its peak memory is the import's own."""
    command = [sys.executable, __file__, "--child", str(mbox), "--tenant", tenant]
    command += ["--channel", str(channel)] + (["--tracemalloc"] if trace else [])
    command += ["--store-batch", str(store_batch)] if store_batch else []
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(mbox: str, *, tenant: str, channel: int, trace: bool, store_batch: int | None) -> None:
    """The child's side: the ``import_mail`` command, timed, with its peak memory."""
    import tracemalloc

    if store_batch:
        archive_import.STORE_BATCH = store_batch
    connection.ensure_connection()
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tallies: list[archive_import.ImportTally] = []
    import_archive = archive_import.import_archive

    def keep_tally(**kwargs: object) -> archive_import.ImportTally:
        tally = import_archive(**kwargs)  # type: ignore[arg-type]
        tallies.append(tally)
        return tally

    archive_import.import_archive = keep_tally  # type: ignore[assignment]
    # The filing rate as the merchant grows: the time of every tenth of the messages filed.
    file_stored = archive_import.file_stored
    filed_at: list[float] = []

    def timed_file_stored(**kwargs: object) -> None:
        if not filed_at:
            filed_at.append(time.monotonic())  # the filing pass starts
        file_stored(**kwargs)  # type: ignore[arg-type]
        filed_at.append(time.monotonic())

    archive_import.file_stored = timed_file_stored  # type: ignore[assignment]
    if trace:
        tracemalloc.start()
    out = StringIO()
    started = time.monotonic()
    cpu_started = time.process_time()
    call_command("import_mail", mbox, tenant=tenant, channel=channel, stdout=out)
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    peak_heap = tracemalloc.get_traced_memory()[1] if trace else None
    tenth = max(1, (len(filed_at) - 1) // 10)
    marks = filed_at[::tenth]
    by_tenth = [round(tenth / (later - earlier), 1) for earlier, later in pairwise(marks)]
    tally = tallies[0]
    print(
        json.dumps(
            {
                "summary": out.getvalue().splitlines()[0],
                "failures": tally.failures[:5],
                "imported": tally.imported,
                "duplicate": tally.duplicate,
                "ignored": tally.ignored,
                "failed": len(tally.failures),
                "stored": tally.stored,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "storing_seconds": tally.seconds.get("storing", 0.0),
                "filing_seconds": tally.seconds.get("filing", 0.0),
                "baseline_rss_kib": baseline_kib,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "peak_heap_kib": None if peak_heap is None else peak_heap // 1024,
                "filing_messages_per_s_by_tenth": by_tenth,
            }
        )
    )


def threaded_replies(tenant_slug: str, pairs: list[tuple[str, str]]) -> int:
    """How many replies sit on the ticket of the mail they answer."""
    from helpdesk.models import Tenant
    from tickets.models import Message

    tenant = Tenant.objects.get(slug=tenant_slug)
    ticket_of: dict[str, int] = {}
    with tenancy.activate(tenant):
        ids = sorted({mid for pair in pairs for mid in pair})
        for start in range(0, len(ids), 1000):
            rows = Message.objects.filter(external_id__in=ids[start : start + 1000])
            ticket_of.update(rows.values_list("external_id", "ticket_id"))
    return sum(
        1
        for reply, original in pairs
        if reply in ticket_of and ticket_of.get(reply) == ticket_of.get(original)
    )


class Results(dict[str, object]):
    """``name: value`` lines, printed as soon as each is known (a long run that fails late
    keeps what it measured)."""

    def __init__(self, **first: object) -> None:
        super().__init__()
        for name, value in first.items():
            self[name] = value

    def __setitem__(self, name: str, value: object) -> None:
        super().__setitem__(name, value)
        print(f"{name}: {value}", flush=True)


def run(options: argparse.Namespace) -> dict[str, object]:
    from bench.ingest import bench_channel

    results = Results(load_average_before=load_average())
    folder = Path(tempfile.mkdtemp(prefix="helpdesk-bench-import-"))
    try:
        first: tuple[Path, str, int] | None = None
        for size in options.sizes:
            mbox = folder / f"archive-{size}.mbox"
            print(f"writing {mbox} ({size} messages)", file=sys.stderr)
            pairs = write_mbox(mbox, messages=size, seed=options.seed)
            tenant, account = bench_channel(f"bench-import-{size}-{uuid.uuid4().hex[:6]}")
            print(f"importing into {tenant.slug}", file=sys.stderr)
            measured = import_in_child(
                mbox,
                tenant=tenant.slug,
                channel=account.pk,
                trace=options.tracemalloc,
                store_batch=options.store_batch,
            )
            name = f"import_{size}"
            seconds = float(measured["seconds"])  # type: ignore[arg-type]
            results[f"{name}_mbox_mib"] = round(mbox.stat().st_size / 2**20, 1)
            results[f"{name}_messages_per_s"] = round(size / seconds, 1)
            results[f"{name}_seconds"] = round(seconds, 1)
            results[f"{name}_cpu_seconds"] = round(float(measured["cpu_seconds"]), 1)  # type: ignore[arg-type]
            storing = float(measured["storing_seconds"])  # type: ignore[arg-type]
            filing = float(measured["filing_seconds"])  # type: ignore[arg-type]
            results[f"{name}_storing_messages_per_s"] = round(size / storing, 1)
            results[f"{name}_filing_messages_per_s"] = round(int(measured["stored"]) / filing, 1)  # type: ignore[call-overload]
            results[f"{name}_baseline_rss_mib"] = round(int(measured["baseline_rss_kib"]) / 1024, 1)  # type: ignore[call-overload]
            results[f"{name}_peak_rss_mib"] = round(int(measured["peak_rss_kib"]) / 1024, 1)  # type: ignore[call-overload]
            if measured["peak_heap_kib"] is not None:
                results[f"{name}_peak_python_heap_mib"] = round(
                    int(measured["peak_heap_kib"]) / 1024,  # type: ignore[call-overload]
                    1,
                )
            for count in ("imported", "duplicate", "ignored", "failed"):
                results[f"{name}_{count}"] = measured[count]
            results[f"{name}_filing_messages_per_s_by_tenth"] = measured.get(
                "filing_messages_per_s_by_tenth"
            )
            if measured["failures"]:
                results[f"{name}_first_failures"] = measured["failures"]
            results[f"{name}_replies_threaded"] = (
                f"{threaded_replies(tenant.slug, pairs)}/{len(pairs)}"
            )
            results[f"{name}_load_average"] = load_average()
            if first is None:
                first = (mbox, tenant.slug, account.pk)
        if first is not None and options.reimport:
            mbox, slug, channel = first
            again = import_in_child(mbox, tenant=slug, channel=channel, trace=False)
            name = f"reimport_{options.sizes[0]}"
            results[f"{name}_messages_per_s"] = round(
                options.sizes[0] / float(again["seconds"]),  # type: ignore[arg-type]
                1,
            )
            for count in ("imported", "duplicate", "ignored", "failed"):
                results[f"{name}_{count}"] = again[count]
    finally:
        if not options.keep:
            shutil.rmtree(folder, ignore_errors=True)
        if OWN_MEDIA_ROOT:
            shutil.rmtree(os.environ["MEDIA_ROOT"], ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[5_000, 50_000],
        help="messages of each mbox, comma-separated (default: 5000,50000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated mix")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report the Python heap's peak (tracemalloc; makes the import slower)",
    )
    parser.add_argument(
        "--store-batch",
        type=int,
        metavar="N",
        help=f"messages stored per transaction (default: {archive_import.STORE_BATCH})",
    )
    parser.add_argument("--no-reimport", dest="reimport", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the generated mboxes")
    parser.add_argument("--child", metavar="MBOX", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--channel", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        child(
            options.child,
            tenant=options.tenant,
            channel=options.channel,
            trace=options.tracemalloc,
            store_batch=options.store_batch,
        )
        return
    run(options)


if __name__ == "__main__":
    main()
