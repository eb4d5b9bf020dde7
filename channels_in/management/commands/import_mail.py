"""Import a merchant's mail archive (.eml, mbox, Maildir, folders of them) into an email channel.

Every message takes the same path as live mail: stored raw (so a second import of the same
archive is a no-op), then processed on the spot rather than by a worker.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from channels_in import mail_archive
from channels_in.base import AdapterError, Envelope
from channels_in.models import ChannelAccount, RawInbound
from channels_in.pipeline import process_raw, store_raw, store_undeliverable
from helpdesk import tenancy
from helpdesk.models import Tenant
from tickets.models import Channel

State = RawInbound.State


@dataclass
class ImportTally:
    imported: int = 0
    duplicate: int = 0
    ignored: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"imported: {self.imported}, duplicate: {self.duplicate}, "
            f"ignored (automated): {self.ignored}, failed: {len(self.failures)}"
        )


class Command(BaseCommand):
    help = (
        "Import a mail archive (.eml files, mbox files, Maildir folders, folders of these) into "
        "a merchant's email channel. Messages already imported are reported as duplicates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to import")
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="the merchant's slug")
        parser.add_argument(
            "--channel", required=True, type=int, metavar="ID", help="the email channel account id"
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No merchant with the slug {options['tenant']!r}")
        with tenancy.activate(tenant):
            account = self._email_account(tenant, options["channel"])
            try:
                sources = mail_archive.scan(options["paths"])
            except mail_archive.UnreadableArchive as exc:
                raise CommandError(f"Cannot read the archive: {exc}") from exc
            tally = self._import(account, sources, show_progress=not options["no_progress"])
        self.stdout.write(tally.summary())
        for failure in tally.failures:
            self.stdout.write(f"failed: {failure}")

    def _email_account(self, tenant: Tenant, account_id: int) -> ChannelAccount:
        account = ChannelAccount.objects.filter(pk=account_id).first()
        if account is None:
            raise CommandError(
                f"Merchant {tenant.slug!r} has no channel account with id {account_id}"
            )
        if account.kind != Channel.EMAIL:
            raise CommandError(
                f"Channel account {account_id} ({account.name}) is a {account.get_kind_display()} "
                "channel, not an email channel"
            )
        return account

    def _import(
        self,
        account: ChannelAccount,
        sources: list[mail_archive.ArchiveSource],
        *,
        show_progress: bool,
    ) -> ImportTally:
        tally = ImportTally()
        total = sum(source.count for source in sources)
        # disable=None lets tqdm hide itself when stderr is not a terminal.
        with tqdm(
            total=total, unit="msg", file=sys.stderr, disable=None if show_progress else True
        ) as progress:
            for source in sources:
                try:
                    for item in source.messages():
                        self._import_one(account, item, tally)
                        progress.update()
                except OSError as exc:  # the file changed or vanished since it was scanned
                    tally.failures.append(f"{source.path}: {exc.strerror or exc}")
        return tally

    def _import_one(
        self, account: ChannelAccount, item: mail_archive.ArchivedMessage, tally: ImportTally
    ) -> None:
        try:
            raw, created = store_raw(
                account=account, envelope=Envelope.of(item.payload), source=RawInbound.Source.IMPORT
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
            return
        if not created and raw.state != State.FAILED:
            tally.duplicate += 1
            return
        # New, or stored by an earlier run that failed on it: process it now.
        try:
            result = process_raw(raw.pk)
        except Exception as exc:  # the pipeline has marked it failed and logged it
            tally.failures.append(f"{item.origin} (raw #{raw.pk}): {type(exc).__name__}: {exc}")
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
            tally.failures.append(f"{item.origin} (raw #{raw.pk}): {result.error}")
