"""Customers, orders, tickets, messages and the audit log. Every table carries its tenant."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from helpdesk.money import AMOUNT_DIGITS, AMOUNT_PLACES
from helpdesk.tenancy import TenantOwned, require_tenant

# Groups, presence, business hours and service targets: what routing reads (re-exported here).
from tickets.models.imports import ImportJob as ImportJob
from tickets.models.imports import ImportRowError as ImportRowError
from tickets.models.reasons import ReasonCode as ReasonCode
from tickets.models.routing import AgentPresence as AgentPresence
from tickets.models.routing import Group
from tickets.models.routing import GroupHoliday as GroupHoliday
from tickets.models.routing import GroupMember as GroupMember
from tickets.models.routing import RoutingStrategy as RoutingStrategy
from tickets.models.routing import ServiceTarget as ServiceTarget
from tickets.models.workspace import Block as Block
from tickets.models.workspace import IgnoredReason
from tickets.models.workspace import Macro as Macro


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    CHAT = "chat", _("Live chat")
    WECHAT = "wechat", _("WeChat")
    PHONE = "phone", _("Phone")
    WEB = "web", _("Web form")
    API = "api", _("API")
    INTERNAL = "internal", _("Internal")


class IdentityKind(models.TextChoices):
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")
    WECHAT = "wechat", _("WeChat openid")
    CHAT = "chat", _("Chat visitor")
    EXTERNAL = "external", _("Customer id in the merchant's system")


# Identities that only mean something on one channel account: a WeChat openid belongs to one
# Official Account, a chat visitor id to one widget, a customer id to the merchant's system
# behind one API channel. Email addresses and phone numbers are the merchant's, across channels.
ACCOUNT_SCOPED_KINDS = frozenset({IdentityKind.WECHAT, IdentityKind.CHAT, IdentityKind.EXTERNAL})


class Customer(TenantOwned):
    name = models.CharField(max_length=200, blank=True)
    # The customer's id in the merchant's own system (their shop's customer number): imports
    # find the customer by it (tickets.imports).
    external_id = models.CharField(max_length=64, blank=True)
    locale = models.CharField(max_length=16, blank=True)
    notes = models.TextField(blank=True)
    # VIP customers' conversations are handed out before everyone else's.
    is_vip = models.BooleanField(default=False)
    # The persona group the customer chose ("friendly", "expert"): their tickets go there.
    persona_group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set when this customer was merged into another: their identities, tickets and events
    # moved there (tickets.merging); the row stays so old links can say where they went.
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_customers"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=~Q(external_id=""),
                name="customer_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"Customer #{self.pk}"

    @property
    def primary_email(self) -> str:
        identity = self.identities.filter(kind=IdentityKind.EMAIL).first()
        return identity.value if identity else ""


class CustomerIdentity(TenantOwned):
    """One way to reach a customer, so two channels meet in one person: unique per merchant and
    kind (email, phone), or per channel account for kinds that only mean something there."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    value = models.CharField(max_length=254)  # normalised: lower-case email, E.164 phone
    # Set for ACCOUNT_SCOPED_KINDS: the channel account the identity belongs to.
    account = models.ForeignKey(
        "channels_in.ChannelAccount",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="identities",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "value"],
                condition=Q(account__isnull=True),
                name="identity_unique",
            ),
            models.UniqueConstraint(
                fields=["account", "kind", "value"],
                condition=Q(account__isnull=False),
                name="identity_unique_per_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class Order(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending payment")
        PAID = "paid", _("Paid")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    number = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID)
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0")
    )
    paid_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0")
    )
    refunded_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0")
    )
    placed_at = models.DateTimeField()
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    carrier = models.CharField(max_length=60, blank=True)
    tracking_number = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        # Defect rates count the orders placed in a window (escalation.metrics).
        indexes = [models.Index(fields=["tenant", "placed_at"], name="order_placed_idx")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="order_unique_number"),
            models.CheckConstraint(
                condition=Q(total_amount__gte=0, paid_amount__gte=0, refunded_amount__gte=0),
                name="order_amounts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("paid_amount")),
                name="order_refund_within_paid",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def refundable_amount(self) -> Decimal:
        return self.paid_amount - self.refunded_amount


class OrderLine(TenantOwned):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    product_name = models.CharField(max_length=200)
    supplier = models.CharField(max_length=200, blank=True)
    manufacturer = models.CharField(max_length=200, blank=True)
    category = models.CharField(max_length=100, blank=True)  # routes to skilled groups
    quantity = models.PositiveIntegerField(default=1)
    unit_price_amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_price_amount__gte=0), name="orderline_price_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_amount(self) -> Decimal:
        return self.unit_price_amount * self.quantity


class Tag(TenantOwned):
    name = models.CharField(max_length=60)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tag_unique_name")]

    def __str__(self) -> str:
        return self.name


class Ticket(TenantOwned):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        ON_HOLD = "on_hold", _("On hold")
        SOLVED = "solved", _("Solved")
        CLOSED = "closed", _("Closed")

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    # Taken from the merchant's counter as the creating transaction's last write (see
    # tickets.services.number_ticket), so the counter's row lock is held only for an instant.
    # Empty only inside that transaction: no committed ticket is without a number.
    number = models.PositiveIntegerField(null=True)
    subject = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="tickets")
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
    )
    group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    tags = models.ManyToManyField(Tag, through="TicketTag", related_name="tickets", blank=True)
    reason_code = models.CharField(max_length=60, blank=True)
    # The product category and language routing matched on (tickets.assignment).
    category = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=16, blank=True)
    reopened_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_customer_message_at = models.DateTimeField(null=True, blank=True)
    solved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Routing: since when the ticket waits in its group's queue (unassigned and open), and when
    # it was last given to an agent.
    queued_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    # Service levels (tickets.service_levels): when the first reply and the resolution are due,
    # counted in the group's business hours; when they happened; when a target was missed.
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    first_response_breached_at = models.DateTimeField(null=True, blank=True)
    resolution_breached_at = models.DateTimeField(null=True, blank=True)
    # The last time the customer was told the group is closed and when it opens again.
    out_of_hours_notice_at = models.DateTimeField(null=True, blank=True)
    # When the ticket was first escalated to a supervisor (escalation.escalations): what the
    # escalation rate counts.
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Set when the ticket was merged into another (tickets.merging): its messages moved there.
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_tickets"
    )
    # Spam, or written by a blocked sender: kept, but out of every inbox view but "Spam".
    ignored_at = models.DateTimeField(null=True, blank=True)
    ignored_reason = models.CharField(max_length=16, choices=IgnoredReason.choices, blank=True)
    # What search reads (tickets.search): subject, message bodies, customer names and
    # identities, order and tracking numbers, with Chinese segmented into words.
    search_text = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="ticket_unique_number"),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-updated_at"], name="ticket_queue_idx"),
            models.Index(
                fields=["tenant", "customer", "channel", "status"], name="ticket_thread_idx"
            ),
            # An agent's load (open tickets assigned to them) and a group's queue.
            models.Index(fields=["tenant", "assignee", "status"], name="ticket_load_idx"),
            # The supervisor dashboard's windows: tickets by when they were opened.
            models.Index(fields=["tenant", "created_at"], name="ticket_created_idx"),
            models.Index(
                fields=["tenant", "group", "queued_at"],
                condition=Q(queued_at__isnull=False),
                name="ticket_queue_wait_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.status not in {self.Status.SOLVED, self.Status.CLOSED}


class TicketTag(TenantOwned):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ticket", "tag"], name="tickettag_unique")]


# A send that has not finished in this time died with its worker; the agent may send again.
STUCK_SENDING_AFTER = timedelta(minutes=10)


class Message(TenantOwned):
    class Direction(models.TextChoices):
        INBOUND = "inbound", _("From the customer")
        OUTBOUND = "outbound", _("To the customer")
        NOTE = "note", _("Internal note")

    class Delivery(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        NOT_SENT = "not_sent", _("Not sent")  # internal notes

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    author_customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="messages"
    )
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)  # what agents are shown (quotes trimmed)
    full_text = models.TextField(blank=True)  # everything as received
    body_html = models.TextField(blank=True)  # sanitised before it is stored
    # The channel's id for this message (Message-ID for mail): a redelivery is recognised by it.
    external_id = models.CharField(max_length=255, blank=True)
    delivery_state = models.CharField(
        max_length=10, choices=Delivery.choices, default=Delivery.RECEIVED
    )
    delivery_error = models.TextField(blank=True)
    delivery_attempts = models.PositiveIntegerField(default=0)
    delivery_changed_at = models.DateTimeField(null=True, blank=True)
    # Set while a reply that failed for a reason that may pass waits for its next try: the
    # agent sees it retrying (and may send it at once) instead of a bare "queued".
    delivery_next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The channel account the message came in on or goes out through.
    channel_account = models.ForeignKey(
        "channels_in.ChannelAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    # The channel's conversation (a chat session, the JSON API's conversation id): threading
    # looks messages up by it, per channel account.
    conversation_id = models.CharField(max_length=255, blank=True)
    # For a reply: the status the agent chose for the ticket once it is sent, and the status the
    # ticket had when they wrote it (the choice applies only if nobody changed it since).
    then_status = models.CharField(max_length=16, blank=True)
    status_when_written = models.CharField(max_length=16, blank=True)
    # Channel-specific details: addressing (from, to, recipients), threading references.
    metadata = models.JSONField(default=dict, blank=True)
    # Email only: further recipients of an outbound message (addresses, normalised).
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "external_id"],
                condition=~Q(external_id=""),
                name="message_unique_external_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "channel_account", "conversation_id"],
                condition=~Q(conversation_id=""),
                name="message_conversation_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} on #{self.ticket_id}"

    @property
    def is_retrying(self) -> bool:
        """A reply whose last try failed for a reason that may pass, waiting for the next."""
        return (
            self.delivery_state == self.Delivery.QUEUED
            and self.delivery_next_attempt_at is not None
        )

    @property
    def can_be_resent(self) -> bool:
        if self.delivery_state == self.Delivery.FAILED:
            return True
        stuck_since = timezone.now() - STUCK_SENDING_AFTER
        return self.delivery_state == self.Delivery.SENDING and (
            self.delivery_changed_at is None or self.delivery_changed_at < stuck_since
        )


def attachment_path(instance: Attachment, filename: str) -> str:
    # The stored name is ours; the customer's file name is kept in the row.
    tenant_id = instance.tenant_id or require_tenant().pk
    return f"attachments/{tenant_id}/{uuid.uuid4().hex}"


class Attachment(TenantOwned):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    # Empty when the file could not be had (``missing_reason`` says why): listed, not offered.
    file = models.FileField(upload_to=attachment_path, max_length=255, blank=True)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.PositiveBigIntegerField()
    content_id = models.CharField(max_length=255, blank=True)
    inline = models.BooleanField(default=False)
    missing_reason = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return self.filename


class CustomerEvent(TenantOwned):
    """Something a customer did on a channel that is not a message, on their timeline."""

    class Kind(models.TextChoices):
        SUBSCRIBED = "subscribed", _("Subscribed")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        CONVERSATION_STARTED = "conversation_started", _("Started a conversation")
        CONVERSATION_ENDED = "conversation_ended", _("Ended a conversation")
        VISITOR_JOINED = "visitor_joined", _("Joined the chat")
        VISITOR_LEFT = "visitor_left", _("Left the chat")
        CALL_STARTED = "call_started", _("Call started")
        CALL_ENDED = "call_ended", _("Call ended")
        CALL_MISSED = "call_missed", _("Missed call")
        PROFILE_UPDATED = "profile_updated", _("Profile updated")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    channel_account = models.ForeignKey(
        "channels_in.ChannelAccount", on_delete=models.SET_NULL, null=True, blank=True
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    external_id = models.CharField(max_length=255)
    conversation_id = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "external_id"], name="customerevent_unique_delivery"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "-occurred_at"], name="customer_event_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.customer_id})"


class AuditEvent(TenantOwned):
    """Who did what, when: written by services in the same transaction; never updated or deleted."""

    rls_append_only = True

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)  # "agent li", "system", "customer li.wei@..."
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_object_idx")
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are append-only")
