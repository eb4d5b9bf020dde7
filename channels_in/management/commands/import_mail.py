"""Import a merchant's archive of mail (.eml, mbox, Maildir, folders of them) into an email channel.

Every message takes the same path as live mail: stored raw (so a second import of the same
archive is a no-op), then filed on the spot rather than by a worker, oldest first. The bulk work
(streaming the archive, storing in batches, filing in date order) is
``channels_in.archive_import``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_in import archive_import, mail_archive
from channels_in.models import ChannelAccount
from helpdesk import tenancy
from helpdesk.models import Tenant
from tickets.models import Channel


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
            tally = archive_import.import_archive(
                account=account, sources=sources, show_progress=not options["no_progress"]
            )
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
