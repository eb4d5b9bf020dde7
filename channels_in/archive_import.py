"""Importing a mail archive in bulk: stored in batches, then filed in the order it was written.

Every message still takes the live path: ``store_raw`` keeps it once per Message-ID (so importing
the same archive again is all duplicates) and ``process_raw`` files it (threading, tenancy, audit).
What is batched is the reading and the storing:

1. Storing: the archive is read as a stream, one message at a time, and stored in transactions
   of ``STORE_BATCH`` messages (one commit per batch, not per message). Each message's Date is
   read from its header block on the way.
2. Filing: the stored messages are filed oldest first (by Date; a message without a readable
   one keeps its place after the message before it in the archive), so a reply that an export
   lists before the message it answers still threads onto the ticket that message opens.

The filing order lives in a private SQLite file on local disk, read back through its index, so
memory stays flat whatever the archive's size. (A PostgreSQL temporary table would tie the import
to one server session, which transaction pooling does not promise; a column on ``RawInbound``
would make a schema change of a detail only the import needs.)

The import files what it stores itself, so the stored messages are held from the sweep that
hands waiting messages to workers (``queued_at`` a little ahead, renewed while the import
runs): a worker filing them meanwhile would file them in arrival order. If the import dies,
the hold lapses and the sweep, or running the import again, files the rest.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from channels_in import mail_archive
from channels_in.base import AdapterError, Envelope
from channels_in.models import ChannelAccount, RawInbound
from channels_in.pipeline import process_raw, store_raw, store_undeliverable

State = RawInbound.State

STORE_BATCH = 200
# How far ahead stored messages are held from the sweep, and how often the import renews it.
HOLD = timedelta(minutes=15)
RENEW_HOLD_EVERY = timedelta(minutes=5)
# Pages of the filing order read from SQLite at a time.
FILING_PAGE = 500


@dataclass
class ImportTally:
    imported: int = 0
    duplicate: int = 0
    ignored: int = 0
    failures: list[str] = field(default_factory=list)
    stored: int = 0  # messages stored by this run (new, or left unfiled by an earlier one)
    seconds: dict[str, float] = field(default_factory=dict)  # per pass: "storing", "filing"

    def summary(self) -> str:
        return (
            f"imported: {self.imported}, duplicate: {self.duplicate}, "
            f"ignored (automated): {self.ignored}, failed: {len(self.failures)}"
        )


class FilingOrder:
    """The stored messages waiting to be filed, read back by (date, archive place).

    Kept in a private temporary SQLite database: on disk beyond a small page cache, deleted
    when closed.
    """

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # "": private, on disk, removed on close
        self.db.execute("PRAGMA cache_size = -2048")  # KiB
        self.db.execute(
            "CREATE TABLE waiting (raw_id INTEGER PRIMARY KEY, sent REAL NOT NULL,"
            " place INTEGER NOT NULL, origin TEXT NOT NULL)"
        )
        self.count = 0

    def add(self, *, raw_id: int, sent: float, place: int, origin: str) -> bool:
        """Put a message in line; False when it already is (the archive holds it twice)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO waiting (raw_id, sent, place, origin) VALUES (?, ?, ?, ?)",
            (raw_id, sent, place, origin),
        )
        self.count += cursor.rowcount
        return cursor.rowcount == 1

    def in_order(self) -> Iterator[tuple[int, str]]:
        """(raw id, origin) of every message, oldest first, a page at a time (keyset)."""
        self.db.commit()
        self.db.execute("CREATE INDEX IF NOT EXISTS waiting_by_date ON waiting (sent, place)")
        after = (float("-inf"), -1)
        while True:
            page = self.db.execute(
                "SELECT raw_id, origin, sent, place FROM waiting WHERE (sent, place) > (?, ?)"
                " ORDER BY sent, place LIMIT ?",
                (*after, FILING_PAGE),
            ).fetchall()
            if not page:
                return
            for raw_id, origin, _, _ in page:
                yield raw_id, origin
            after = (page[-1][2], page[-1][3])

    def close(self) -> None:
        self.db.close()


def import_archive(
    *,
    account: ChannelAccount,
    sources: list[mail_archive.ArchiveSource],
    show_progress: bool = False,
    progress_file: TextIO | None = None,
) -> ImportTally:
    """Store every message of the archive once, then file the stored ones oldest first.

    Call with the account's tenant active. Messages that are not mail, or that fail to file,
    are kept as failed with their error and listed in the tally; the rest carry on.
    """
    tally = ImportTally()
    order = FilingOrder()
    hold = _Hold(account)
    try:
        started = time.monotonic()
        with _progress(
            "storing", sum(s.count for s in sources), show_progress, progress_file
        ) as bar:
            for batch in _batches(_archive_messages(sources, tally)):
                store_batch(account=account, batch=batch, order=order, tally=tally)
                bar.update(len(batch))
                hold.keep()
        tally.stored = order.count
        tally.seconds["storing"] = time.monotonic() - started

        started = time.monotonic()
        with _progress("filing", order.count, show_progress, progress_file) as bar:
            for raw_id, origin in order.in_order():
                file_stored(raw_id=raw_id, origin=origin, tally=tally)
                bar.update()
                hold.keep()
        tally.seconds["filing"] = time.monotonic() - started
    finally:
        order.close()
    return tally


@dataclass
class _Placed:
    """A message of the archive with its place in it and the date it is filed by."""

    item: mail_archive.ArchivedMessage
    place: int
    sent: float


def _archive_messages(
    sources: list[mail_archive.ArchiveSource], tally: ImportTally
) -> Iterator[_Placed]:
    place = 0
    sent = float("-inf")  # before the first dated message: first
    for source in sources:
        try:
            for item in source.messages():
                place += 1
                moment = mail_archive.sent_at(item.payload)
                if moment is not None:
                    sent = moment.timestamp()
                yield _Placed(item, place, sent)
        except OSError as exc:  # the file changed or vanished since it was scanned
            tally.failures.append(f"{source.path}: {exc.strerror or exc}")


def _batches(messages: Iterable[_Placed]) -> Iterator[list[_Placed]]:
    batch: list[_Placed] = []
    for message in messages:
        batch.append(message)
        if len(batch) >= STORE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def store_batch(
    *, account: ChannelAccount, batch: list[_Placed], order: FilingOrder, tally: ImportTally
) -> None:
    """Store a batch of messages in one transaction and put the ones to file in line.

    A message already stored counts as a duplicate unless it still waits to be filed (an
    earlier import stopped before filing it) or failed to file (it is tried again).
    """
    waiting: list[int] = []
    with transaction.atomic():
        for placed in batch:
            item = placed.item
            try:
                raw, created = store_raw(
                    account=account,
                    envelope=Envelope.of(item.payload),
                    source=RawInbound.Source.IMPORT,
                )
            except AdapterError as exc:
                # Kept all the same, as IMAP polling does: visible under Inbound, to file or discard.
                raw = store_undeliverable(
                    account=account,
                    payload=item.payload,
                    source=RawInbound.Source.IMPORT,
                    error=f"{item.origin}: {exc.message}",
                )
                tally.failures.append(f"{item.origin} (raw #{raw.pk}): {exc.message}")
                continue
            to_file = created or raw.state in (State.RECEIVED, State.FAILED)
            if to_file and order.add(
                raw_id=raw.pk, sent=placed.sent, place=placed.place, origin=item.origin
            ):
                if raw.state == State.RECEIVED:
                    waiting.append(raw.pk)
            else:
                tally.duplicate += 1
        if waiting:
            RawInbound.objects.filter(pk__in=waiting, state=State.RECEIVED).update(
                queued_at=timezone.now() + HOLD
            )
    order.db.commit()


class _Hold:
    """Renews, every few minutes, the hold on the messages the import has yet to file."""

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account
        self.renew_at = time.monotonic() + RENEW_HOLD_EVERY.total_seconds()

    def keep(self) -> None:
        if time.monotonic() < self.renew_at:
            return
        now = timezone.now()
        # Held messages are the received ones queued "in the future".
        RawInbound.objects.filter(
            account=self.account, state=State.RECEIVED, queued_at__gt=now
        ).update(queued_at=now + HOLD)
        self.renew_at = time.monotonic() + RENEW_HOLD_EVERY.total_seconds()


def file_stored(*, raw_id: int, origin: str, tally: ImportTally) -> None:
    """File one stored message through the pipeline and count how it went."""
    try:
        result = process_raw(raw_id)
    except Exception as exc:  # the pipeline has marked it failed and logged it
        tally.failures.append(f"{origin} (raw #{raw_id}): {type(exc).__name__}: {exc}")
        return
    if result is None:  # a worker holds it (or just finished it): not ours to count
        tally.duplicate += 1
    elif result.state == State.PROCESSED:
        tally.imported += 1
    elif result.state == State.DUPLICATE:
        tally.duplicate += 1
    elif result.state == State.IGNORED:
        tally.ignored += 1
    else:
        tally.failures.append(f"{origin} (raw #{raw_id}): {result.error}")


def _progress(desc: str, total: int, show: bool, file: TextIO | None) -> tqdm:
    # unit="msg" puts the rate (msg/s) in the bar; disable=None hides it when not a terminal.
    return tqdm(
        total=total,
        desc=desc,
        unit="msg",
        file=file or sys.stderr,
        disable=None if show else True,
        dynamic_ncols=True,
    )
