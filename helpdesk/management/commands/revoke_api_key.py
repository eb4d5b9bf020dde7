"""Revoke a merchant's REST API key by its prefix; audited in the merchant's log."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from helpdesk.api_keys import COMMAND_LINE, revoke_api_key
from helpdesk.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Revoke an API key of a merchant (the prefix is the part after hd_ in the token)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="merchant slug")
        parser.add_argument("prefix", help="the key's prefix, as listed on the API keys page")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No merchant with slug {options['tenant']!r}")
        prefix = options["prefix"].removeprefix("hd_").partition("_")[0]
        key = ApiKey.objects.filter(tenant=tenant, prefix=prefix).first()
        if key is None:
            raise CommandError(f"{tenant.name} has no API key {prefix!r}")
        if key.revoked_at is not None:
            self.stdout.write(
                f"API key {prefix} ({key.name}) was already revoked on {key.revoked_at:%Y-%m-%d %H:%M} UTC"
            )
            return
        key = revoke_api_key(acting_agent=COMMAND_LINE, key=key)
        self.stdout.write(f"Revoked API key {prefix} ({key.name}) of {tenant.name}")
