"""Channel accounts a merchant connects, and every raw payload they deliver."""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned
from tickets.models import Channel, Message, Ticket


def new_inbound_secret() -> str:
    return secrets.token_urlsafe(32)


class ChannelAccount(TenantOwned):
    """One connected channel of a merchant: a support mailbox, a WeChat account, a phone line."""

    kind = models.CharField(max_length=16, choices=Channel.choices)
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)
    # Authenticates the provider posting to our inbound endpoint.
    inbound_secret = models.CharField(max_length=64, default=new_inbound_secret)
    # After a rotation the old secret keeps working until the merchant's forwarder is updated.
    previous_inbound_secret = models.CharField(max_length=64, blank=True)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    # Set when the channel fails in a way retrying cannot fix; an admin sees why.
    paused = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"


class Mailbox(TenantOwned):
    """The email side of an email channel: the address customers write to, IMAP and SMTP."""

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, related_name="mailbox")
    address = models.EmailField()  # the From of agents' replies
    from_name = models.CharField(max_length=120, blank=True)
    imap_host = models.CharField(max_length=255, blank=True)
    imap_port = models.PositiveIntegerField(default=993)
    imap_use_ssl = models.BooleanField(default=True)
    imap_username = models.CharField(max_length=255, blank=True)
    imap_password_encrypted = models.TextField(blank=True)
    imap_folder = models.CharField(max_length=255, default="INBOX")
    # What we have fetched: a new UIDVALIDITY means the server renumbered the folder.
    imap_uidvalidity = models.BigIntegerField(null=True, blank=True)
    imap_last_uid = models.BigIntegerField(default=0)
    imap_last_polled_at = models.DateTimeField(null=True, blank=True)
    smtp_host = models.CharField(max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField(default=587)
    smtp_username = models.CharField(max_length=255, blank=True)
    smtp_password_encrypted = models.TextField(blank=True)
    smtp_use_tls = models.BooleanField(default=True)
    smtp_use_ssl = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.address

    @property
    def polls_imap(self) -> bool:
        return bool(self.imap_host and self.imap_username)


class ApiChannel(TenantOwned):
    """The JSON message API side of an API channel: where agents' replies are posted back.

    The merchant's system signs what it posts with the channel's secret
    (``ChannelAccount.inbound_secret``), and replies are signed with it too (helpdesk.signing).
    """

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, related_name="api")
    callback_url = models.URLField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.callback_url or str(self.account)


class RawInbound(TenantOwned):
    """A payload exactly as a channel delivered it, stored before anything else happens."""

    class State(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        DUPLICATE = "duplicate", _("Duplicate")
        IGNORED = "ignored", _("Ignored (automated)")
        FAILED = "failed", _("Failed")
        DISCARDED = "discarded", _("Discarded")

    class Source(models.TextChoices):
        WEBHOOK = "webhook", _("Webhook")
        IMAP = "imap", _("IMAP")
        IMPORT = "import", _("Import")

    account = models.ForeignKey(
        ChannelAccount, on_delete=models.PROTECT, related_name="raw_inbound"
    )
    external_id = models.CharField(max_length=255)
    source = models.CharField(max_length=10, choices=Source.choices)
    # Who sent it and what about, read from the payload's headers when it was stored (and from
    # the parsed message once processed), so an admin can tell failed messages apart.
    sender = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    payload = models.BinaryField()
    # What of the request the channel's adapter needs besides the body (headers that matter,
    # query string, form fields): a retry parses exactly what arrived (channels_in.base.Envelope).
    envelope = models.JSONField(default=dict, blank=True)
    payload_sha256 = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=255, blank=True)  # why it was ignored, what it duplicated
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ticket = models.ForeignKey(
        Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    # When it was last handed to the task queue; empty when handing it over failed (broker
    # down). The sweep requeues received payloads that no worker holds and that waited too long.
    queued_at = models.DateTimeField(null=True, blank=True, default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "external_id"], name="raw_unique_delivery"),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "state", "received_at"],
                name="raw_attention_idx",
                condition=Q(state__in=["received", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.external_id} ({self.state})"
