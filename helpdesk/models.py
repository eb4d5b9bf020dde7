"""Tenants (merchants) and who may act for them."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned


class Tenant(models.Model):
    """A merchant sharing this helpdesk. A platform table: it carries no tenant itself."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    default_currency = models.CharField(max_length=3, default="CNY")
    time_zone = models.CharField(max_length=64, default="Asia/Shanghai")
    locale = models.CharField(max_length=16, default="zh-hans")
    # Region used to read phone numbers written without a country code.
    phone_region = models.CharField(max_length=2, default="CN")
    max_attachment_bytes = models.PositiveIntegerField(default=20 * 1024 * 1024)
    # Off: an agent works the tickets of their groups (and unrouted ones); on: every ticket.
    # Supervisors and up see every group either way (helpdesk.permissions.can_work_ticket).
    agents_work_all_groups = models.BooleanField(default=False)
    # The ticket number counter; taken under a row lock so numbers are gapless per tenant.
    last_ticket_number = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    SUPERVISOR = "supervisor", _("Supervisor")
    AGENT = "agent", _("Agent")


class Membership(models.Model):
    """A user's place in one tenant. Looked up before a tenant is known (at login), so it is a
    platform table; it still names its tenant, and access goes through ``tenancy.tenants_of``."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.AGENT)
    display_name = models.CharField(max_length=120, blank=True)
    # The interface language the person chose ("" = the merchant's default, Tenant.locale).
    language = models.CharField(max_length=16, blank=True)
    # Added under the person's replies by email.
    signature = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role in {Role.OWNER, Role.ADMIN}

    @property
    def is_supervisor(self) -> bool:
        return self.role in {Role.OWNER, Role.ADMIN, Role.SUPERVISOR}


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiScope(models.TextChoices):
    READ = "read", _("Read")  # GET, HEAD, OPTIONS
    WRITE = "write", _("Write")  # everything that changes something


def default_api_scopes() -> list[str]:
    return [ApiScope.READ.value]


class ApiKey(models.Model):
    """A merchant's key for the REST API. Looked up before a tenant is known, so a platform
    table; only a hash of the secret is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    # Calls made with the key act as this person (who created it), for permissions and audit.
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    # ApiScope values; a JSON list rather than a PostgreSQL array so `make run` (SQLite) works.
    scopes = models.JSONField(default=default_api_scopes)
    expires_at = models.DateTimeField(null=True, blank=True)  # none: until revoked
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @classmethod
    def issue(
        cls,
        *,
        tenant: Tenant,
        acting_user: object,
        name: str,
        scopes: list[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; the returned token is shown once and never stored."""
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(
            tenant=tenant,
            name=name,
            prefix=prefix,
            secret_hash=hash_api_secret(secret),
            acting_user=acting_user,
            scopes=scopes if scopes is not None else default_api_scopes(),
            expires_at=expires_at,
        )
        return key, f"hd_{prefix}_{secret}"


class WebhookDelivery(TenantOwned):
    """One signed webhook we post to a merchant's URL: exactly the bytes signed and sent, and
    every attempt to deliver them. The one delivery log of every kind of webhook."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        RETRYING = "retrying", _("Retrying")
        FAILED = "failed", _("Failed")

    url = models.URLField(max_length=2000)
    event = models.CharField(max_length=64)  # e.g. "message.created"
    body = models.BinaryField()
    # The owner whose signing secret signs it; other owners of webhooks add their own key.
    channel_account = models.ForeignKey(
        "channels_in.ChannelAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
    )
    message = models.ForeignKey(
        "tickets.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_response = models.TextField(blank=True)  # the first 4 KiB of the last answer
    # The last attempts, oldest first: {"at": ISO time, "status": int | None, "error": str, "ms": int}
    attempt_log = models.JSONField(default=list, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "state", "created_at"], name="webhookdelivery_state_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.url} ({self.state})"

    @property
    def destination_host(self) -> str:
        """The host the delivery goes to, as the log shows it."""
        return urlsplit(self.url).netloc.rpartition("@")[2]
