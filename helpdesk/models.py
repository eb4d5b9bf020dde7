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


def tenant_logo_path(instance: Tenant, filename: str) -> str:
    # A new name for every upload, so a browser never shows the old logo from its cache.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    return f"logos/{instance.pk}/{secrets.token_hex(8)}.{extension}"


def default_customer_languages() -> list[str]:
    return ["zh-hans", "en"]


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
    # The events the merchant's active webhook subscriptions want (kept by
    # helpdesk.webhook_events), read with the tenant: an event nobody wants costs no query.
    webhook_events = models.JSONField(default=list, blank=True)
    # Shown beside the name in the header; public by intent (helpdesk.account_views.logo).
    logo = models.ImageField(upload_to=tenant_logo_path, max_length=255, blank=True)
    # The languages customers are answered in (LANGUAGES codes); ``locale`` is the default.
    customer_languages = models.JSONField(default=default_customer_languages, blank=True)
    # Set while a requested deletion waits out its grace period (helpdesk.deletion).
    deletion_requested_at = models.DateTimeField(null=True, blank=True)
    deletion_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["deletion_due_at"], name="tenant_deletion_due_idx")]

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
    # The person's phone (E.164): the phone channel rings it while they are on duty.
    phone = models.CharField(max_length=20, blank=True)
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
    # Merchant settings through the API (webhook subscriptions); the person's role must allow it too.
    ADMIN = "admin", _("Admin")


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


class TenantExport(TenantOwned):
    """A ZIP of everything the merchant holds here (helpdesk.exports), written by a task and
    offered to owners until ``expires_at``."""

    class State(models.TextChoices):
        PENDING = "pending", _("Queued")
        RUNNING = "running", _("Being written")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # Relative to MEDIA_ROOT, under exports/<tenant id>/: never served but through the view.
    file_path = models.CharField(max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # Rows per model ("tickets.Ticket": 12), as in the ZIP's manifest.json.
    counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.state})"

    def is_downloadable(self, now: datetime) -> bool:
        return (
            self.state == self.State.READY
            and bool(self.file_path)
            and (self.expires_at is None or self.expires_at > now)
        )


class TenantDeletionRecord(models.Model):
    """That a merchant was deleted, kept after its rows are gone: a platform table with no
    personal data (no people, no customers), only what was removed and when."""

    former_tenant_id = models.BigIntegerField()  # the id it had; the row itself is gone
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60)
    requested_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    # Rows removed per table, and the media files removed ("files").
    row_counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"{self.slug} (deleted {self.deleted_at:%Y-%m-%d})"


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


# --- The public API (issue 24): idempotent writes, webhook subscriptions, the order feed ------


class IdempotentRequest(TenantOwned):
    """An API write sent with an ``Idempotency-Key``: the first answer, replayed to a repeat of
    the same key by the same caller (an API key, or a signed-in person) until ``expires_at``.
    ``status`` is null while the first request is still being answered."""

    key = models.CharField(max_length=255)
    # "key:<api key id>" or "user:<user id>": one caller's keys never answer another's.
    caller = models.CharField(max_length=40)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    # SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "caller", "key"], name="idempotentrequest_unique_key"
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotentrequest_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.caller} {self.method} {self.path} ({self.key})"


class WebhookEvent(models.TextChoices):
    TICKET_CREATED = "ticket.created", _("Ticket created")
    TICKET_UPDATED = "ticket.updated", _("Ticket updated")
    MESSAGE_CREATED = "message.created", _("Message created")
    REMEDY_GRANTED = "remedy.granted", _("Remedy granted")
    REMEDY_EXECUTED = "remedy.executed", _("Remedy executed")
    ESCALATION_CREATED = "escalation.created", _("Escalation created")
    ESCALATION_RESOLVED = "escalation.resolved", _("Escalation resolved")


class WebhookSubscription(TenantOwned):
    """A merchant's URL told about the events it chose, each delivery signed with ``secret``
    (helpdesk.signing) and logged as a ``WebhookDelivery``."""

    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # WebhookEvent values
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(32)


class SubscriptionDelivery(TenantOwned):
    """Which subscription a delivery in the log was made for: its secret signs every attempt."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="subscription_links"
    )
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="delivery_links"
    )

    def __str__(self) -> str:
        return f"{self.subscription_id} → {self.delivery_id}"


class OrderFeed(TenantOwned):
    """The merchant's shop posting order events to the helpdesk: the secret it signs them with
    (helpdesk.signing), and the previous one while a rotation's grace lasts."""

    secret = models.CharField(max_length=64)
    previous_secret = models.CharField(max_length=64, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="orderfeed_one_per_tenant")]

    def __str__(self) -> str:
        return f"order feed of {self.tenant_id}"


class OrderEvent(TenantOwned):
    """One order event as the shop posted it, stored before anything else: unique per event id
    (a redelivery is a no-op), then applied; a failure stays visible and can be retried."""

    class State(models.TextChoices):
        RECEIVED = "received", _("Received")
        APPLIED = "applied", _("Applied")
        FAILED = "failed", _("Failed")

    event_id = models.CharField(max_length=200)
    body = models.BinaryField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)
    order = models.ForeignKey(
        "tickets.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="orderevent_unique_id"),
        ]
        indexes = [
            models.Index(fields=["tenant", "state", "received_at"], name="orderevent_state_idx")
        ]

    def __str__(self) -> str:
        return f"order event {self.event_id} ({self.state})"


# --- Merchant signup and onboarding: invitations, the getting-started checklist --------------


class Invitation(models.Model):
    """An invitation to join a merchant in a role, mailed as a link that holds a secret token.

    Looked up before a tenant is known (the invited person opens the link signed out), so a
    platform table; only a hash of the token is stored (helpdesk.invitations).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.AGENT)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Moved forward when the invitation is sent again (with a new token).
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["tenant", "accepted_at", "revoked_at"], name="invitation_pending_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.tenant} ({self.role})"

    def is_pending(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class OnboardingProgress(TenantOwned):
    """What a merchant's owner chose on the getting-started checklist (helpdesk.onboarding):
    the steps they skip, and whether the tickets list still reminds them. Whether a step is
    done is never stored; it is read from the merchant's data."""

    skipped_steps = models.JSONField(default=list, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="onboardingprogress_one_per_tenant")
        ]

    def __str__(self) -> str:
        return f"onboarding of {self.tenant_id}"
