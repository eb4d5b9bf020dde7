"""Issue a REST API key for a merchant; the token is printed once and never stored."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from helpdesk.models import ApiKey, Membership, Tenant


class Command(BaseCommand):
    help = "Issue an API key acting as a member of a merchant."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="merchant slug")
        parser.add_argument("--user", required=True, help="username of a member the key acts as")
        parser.add_argument("--name", default="API key")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No merchant with slug {options['tenant']!r}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None or not Membership.objects.filter(tenant=tenant, user=user).exists():
            raise CommandError(f"{options['user']!r} is not a member of {tenant.name}")
        key, token = ApiKey.issue(tenant=tenant, acting_user=user, name=options["name"])
        self.stdout.write(f"API key {key.prefix} for {tenant.name} (acts as {user}):\n{token}")
