"""Fill or rebuild what tickets are found by (``Ticket.search_text``, see tickets.search), a
batch of tickets per transaction: after upgrading, after changing how text is segmented, or
for tickets written by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from helpdesk import tenancy
from helpdesk.models import Tenant
from tickets import search
from tickets.models import Ticket


class Command(BaseCommand):
    help = "Rebuild the search text of every ticket, merchant by merchant, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this merchant (its slug)")
        parser.add_argument("--batch", type=int, default=500, help="tickets per transaction")
        parser.add_argument(
            "--empty-only", action="store_true", help="only tickets with no search text yet"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        with tenancy.deactivate():
            tenants = Tenant.objects.order_by("pk")
            if options["tenant"]:
                tenants = tenants.filter(slug=options["tenant"])
                if not tenants.exists():
                    raise CommandError(f"No merchant {options['tenant']!r}")
            tenants = list(tenants)
        for tenant in tenants:
            done = self.rebuild(tenant, options["batch"], options["empty_only"])
            self.stdout.write(f"{tenant.slug}: {done} tickets")

    def rebuild(self, tenant: Tenant, batch: int, empty_only: bool) -> int:
        done, after = 0, 0
        with tenancy.activate(tenant):
            while True:
                tickets = Ticket.objects.filter(pk__gt=after).order_by("pk")
                if empty_only:
                    tickets = tickets.filter(search_text="")
                ids = list(tickets.values_list("pk", flat=True)[:batch])
                if not ids:
                    return done
                with transaction.atomic():
                    done += search.rebuild_documents(ids)
                after = ids[-1]
