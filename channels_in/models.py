"""Channel accounts a merchant connects, and every raw payload they deliver."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned
from tickets.models import Channel, Message, Ticket


def new_inbound_secret() -> str:
    return secrets.token_urlsafe(32)


def new_forwarding_token() -> str:
    # Lower-case letters and digits only: some mail hosts lower-case the address they forward to.
    return secrets.token_hex(10)


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
    # The forwarding address's secret part, "<merchant>+<token>@<inbound domain>"
    # (channels_in.forwarding); a replaced one keeps working for a grace period too.
    forwarding_token = models.CharField(max_length=32, unique=True, default=new_forwarding_token)
    previous_forwarding_token = models.CharField(max_length=32, blank=True, db_index=True)
    previous_forwarding_valid_until = models.DateTimeField(null=True, blank=True)
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
        SMTP = "smtp", _("Forwarding address")

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


def new_chat_key() -> str:
    return secrets.token_urlsafe(18)


class WebChat(TenantOwned):
    """The live chat side of a chat channel: the widget's public key, the store origins that
    may embed it, what the pre-chat form asks and which persona groups it offers
    (channels_in.chat_channels).

    The public key is written into the store's page, so it is no secret: it names the channel.
    What it carries is checked against ``allowed_origins`` on every request and socket.
    """

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, related_name="webchat")
    # "<merchant slug>.<random>": the widget's socket and endpoints find the merchant by it.
    public_key = models.CharField(max_length=120, unique=True)
    # After a rotation the old key keeps working until the store's pages are updated.
    previous_public_key = models.CharField(max_length=120, blank=True)
    previous_key_valid_until = models.DateTimeField(null=True, blank=True)
    # "https://shop.example.com" (scheme, host and port only); nothing else may embed it.
    allowed_origins = models.JSONField(default=list, blank=True)
    # Which of "name", "email", "phone", "order" the pre-chat form asks (all optional to fill
    # unless listed in ``prechat_required``).
    prechat_fields = models.JSONField(default=list, blank=True)
    prechat_required = models.JSONField(default=list, blank=True)
    # Ids of the merchant's persona groups a visitor may choose between (none: no choice).
    persona_group_ids = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return str(self.account)


class ChatVisitor(TenantOwned):
    """One visitor of a chat widget, known by the id in their signed visitor token: what the
    pre-chat form told us, and when they and the agents last read the conversation."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="visitors")
    visitor_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    order_number = models.CharField(max_length=64, blank=True)
    persona = models.SlugField(max_length=40, blank=True)
    language = models.CharField(max_length=16, blank=True)
    # The widget pings while the page is open; a visitor not seen for a minute is gone, and
    # agents' replies go by email when they gave an address (channels_in.chat).
    last_seen_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    # Read receipts: until when the visitor read the agents' messages, and an agent theirs.
    visitor_read_at = models.DateTimeField(null=True, blank=True)
    agent_read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "visitor_id"], name="chat_visitor_unique"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.visitor_id


class WeChatAccount(TenantOwned):
    """The WeChat Official Account side of a WeChat channel (channels_in.wechat).

    WeChat signs every push with the ``token``; in safe mode it encrypts them with the
    EncodingAESKey; replies go through the API with the AppID and AppSecret. The key and the
    secret are stored Fernet-encrypted (channels_in.crypto).
    """

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, related_name="wechat")
    app_id = models.CharField(max_length=32)
    token = models.CharField(max_length=32)
    encoding_aes_key_encrypted = models.TextField(blank=True)
    app_secret_encrypted = models.TextField(blank=True)
    # When WeChat last verified the server URL (its GET with echostr): the admin sees the
    # connection is made.
    verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.app_id


class PhoneLine(TenantOwned):
    """The phone side of a phone channel: the number customers call, the Twilio auth token that
    signs every webhook (stored Fernet-encrypted), the greeting per language and the group whose
    on-duty agents are rung (channels_in.phone)."""

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, related_name="phone")
    number = models.CharField(max_length=20)  # E.164
    auth_token_encrypted = models.TextField(blank=True)
    # {"zh-hans": "您好…", "en": "Hello…"}: what a caller hears first, in the merchant's language.
    greetings = models.JSONField(default=dict, blank=True)
    # Whose agents are rung and whose business hours apply; none: the merchant's default group.
    group = models.ForeignKey(
        "tickets.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ring_seconds = models.PositiveSmallIntegerField(default=20)

    def __str__(self) -> str:
        return self.number


class CallLog(TenantOwned):
    """A call an agent made or took outside the phone line (a call-back, a call to their own
    mobile), logged on a ticket: who, which number, how long, how it went, and notes."""

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", _("Call to the customer")
        INBOUND = "inbound", _("Call from the customer")

    class Outcome(models.TextChoices):
        ANSWERED = "answered", _("Talked")
        NO_ANSWER = "no_answer", _("No answer")
        BUSY = "busy", _("Busy")
        VOICEMAIL = "voicemail", _("Left a voicemail")
        WRONG_NUMBER = "wrong_number", _("Wrong number")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="call_logs")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    number = models.CharField(max_length=32)
    duration_seconds = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    notes = models.TextField(blank=True)
    called_at = models.DateTimeField()
    # The entry on the ticket's conversation that shows the call.
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-called_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.direction} {self.number} ({self.outcome})"


class CallBack(TenantOwned):
    """A call an agent promised to make at a chosen time: it shows in their "Call-backs due"
    queue from then until it is logged as done."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="call_backs")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=32)
    due_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    call_log = models.ForeignKey(CallLog, on_delete=models.SET_NULL, null=True, blank=True)
    # When agents' pages were told it fell due (channels_in.phone_tasks), once.
    announced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "pk"]
        indexes = [
            models.Index(
                fields=["tenant", "agent", "due_at"],
                condition=Q(done_at__isnull=True),
                name="callback_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} at {self.due_at}"
