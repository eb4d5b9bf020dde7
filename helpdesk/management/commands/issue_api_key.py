"""Issue a REST API key for a merchant; the token is printed once and never stored."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.api_keys import record_key_created
from helpdesk.models import ApiKey, ApiScope, Membership, Tenant


def parse_scopes(value: str) -> list[str]:
    """``"read,write"`` -> ["read", "write"]; an unknown scope is an error."""
    scopes = [part.strip() for part in value.split(",") if part.strip()]
    unknown = set(scopes) - set(ApiScope.values)
    if not scopes or unknown:
        raise CommandError(
            f"--scopes takes read, write, admin or a list such as read,write (not {value!r})"
        )
    return [scope for scope in ApiScope.values if scope in scopes]


def parse_expiry(value: str | None) -> datetime | None:
    """An ISO date (the key works through that day, UTC) or date-time; None: no expiry."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--expires takes a date or date-time like 2027-01-31: {exc}") from exc
    if len(value) == 10:  # a bare date: until the end of that day
        moment = datetime.combine(moment.date() + timedelta(days=1), time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    if moment <= timezone.now():
        raise CommandError("--expires must be in the future")
    return moment


class Command(BaseCommand):
    help = "Issue an API key acting as a member of a merchant."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="merchant slug")
        parser.add_argument("--user", required=True, help="username of a member the key acts as")
        parser.add_argument("--name", default="API key")
        parser.add_argument(
            "--scopes",
            default="read",
            help="read, write, admin or a list such as read,write (default: read)",
        )
        parser.add_argument(
            "--expires", help="date (valid through that day, UTC) or date-time; default: never"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = parse_scopes(options["scopes"])
        expires_at = parse_expiry(options["expires"])
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No merchant with slug {options['tenant']!r}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None or not Membership.objects.filter(tenant=tenant, user=user).exists():
            raise CommandError(f"{options['user']!r} is not a member of {tenant.name}")
        with transaction.atomic(), tenancy.activate(tenant):
            key, token = ApiKey.issue(
                tenant=tenant,
                acting_user=user,
                name=options["name"],
                scopes=scopes,
                expires_at=expires_at,
            )
            record_key_created(actor="manage.py issue_api_key", key=key)
        expiry = f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        self.stdout.write(
            f"API key {key.prefix} for {tenant.name} (acts as {user}; {', '.join(scopes)}"
            f"{expiry}):\n{token}"
        )
