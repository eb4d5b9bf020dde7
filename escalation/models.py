"""What a merchant lets its people give customers, and what they gave.

An ``EmpowermentPolicy`` per merchant holds the rolling customer period and where remedies are
executed; ``RemedyLimit`` rows say, per role (or for one person, overriding the role), remedy
kind and currency, how much may be given. No row for a currency: nothing in it without approval.
A ``Remedy`` is one grant, executed against the merchant's order system.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from helpdesk.models import Role
from helpdesk.money import AMOUNT_DIGITS, AMOUNT_PLACES
from helpdesk.tenancy import TenantOwned


class RemedyKind(models.TextChoices):
    # In the order an agent should reach for them: the least costly first.
    GIFT = "gift", _("Gift or goodwill credit")
    RESHIP = "reship", _("Replacement or expedited reshipment")
    PRICE_PROTECTION = "price_protection", _("Price-protection compensation")
    REFUND = "refund", _("Refund")
    FREE_ORDER = "free_order", _("Free order")


# Remedies that pay money back on an order: together never more than was paid on it.
PAYS_OUT = frozenset({RemedyKind.REFUND, RemedyKind.PRICE_PROTECTION, RemedyKind.FREE_ORDER})
# Remedies that only make sense for an order.
NEEDS_ORDER = PAYS_OUT | {RemedyKind.RESHIP}


def new_execution_secret() -> str:
    return secrets.token_urlsafe(32)


class EmpowermentPolicy(TenantOwned):
    """A merchant's rules for remedies; one per merchant, created with its defaults on demand."""

    # The per-customer limit counts what a customer was given in this many days, rolling.
    customer_period_days = models.PositiveIntegerField(default=30)
    # Where granted remedies are sent to be carried out (refund issued, coupon created); empty:
    # each remedy waits, marked for manual execution, until someone does it by hand.
    execution_url = models.URLField(max_length=500, blank=True)
    execution_secret = models.CharField(max_length=64, default=new_execution_secret)
    # After a rotation the old secret signs too (a second signature) until the merchant's order
    # system has switched: HELPDESK_SECRET_GRACE_HOURS.
    previous_execution_secret = models.CharField(max_length=64, blank=True)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="empowermentpolicy_one_per_tenant"),
            models.CheckConstraint(
                condition=Q(customer_period_days__gte=1), name="empowermentpolicy_period_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Empowerment policy of tenant {self.tenant_id}"


def _amount(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True, blank=True, **kwargs
    )


class RemedyLimit(TenantOwned):
    """How much a role (or one person, overriding their role) may give of one remedy kind in
    one currency without approval. An empty cap is no cap of that sort; the row itself is the
    permission. For free orders the per-grant cap is the largest order value that may be comped.
    """

    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=RemedyKind.choices)
    currency = models.CharField(max_length=3)
    per_grant_max_amount = _amount()
    # At most this share of the order's value per grant, in percent (e.g. 30.00).
    order_share_max_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True
    )
    per_agent_day_max_amount = _amount()
    per_customer_period_max_amount = _amount()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "currency", "role"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="") & Q(user__isnull=False))
                | (~Q(role="") & Q(user__isnull=True)),
                name="remedylimit_role_or_person",
            ),
            models.UniqueConstraint(
                fields=["tenant", "role", "kind", "currency"],
                condition=Q(user__isnull=True),
                name="remedylimit_unique_role",
            ),
            models.UniqueConstraint(
                fields=["tenant", "user", "kind", "currency"],
                condition=Q(user__isnull=False),
                name="remedylimit_unique_person",
            ),
            models.CheckConstraint(
                condition=(Q(per_grant_max_amount__isnull=True) | Q(per_grant_max_amount__gte=0))
                & (Q(per_agent_day_max_amount__isnull=True) | Q(per_agent_day_max_amount__gte=0))
                & (
                    Q(per_customer_period_max_amount__isnull=True)
                    | Q(per_customer_period_max_amount__gte=0)
                ),
                name="remedylimit_caps_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(order_share_max_percent__isnull=True)
                | Q(order_share_max_percent__gte=0, order_share_max_percent__lte=100),
                name="remedylimit_share_is_a_percentage",
            ),
        ]

    def __str__(self) -> str:
        who = self.role or f"user {self.user_id}"
        return f"{who}: {self.kind} in {self.currency}"


class Remedy(TenantOwned):
    """One remedy granted to a customer on a ticket, and how its execution went."""

    class Execution(models.TextChoices):
        PENDING = "pending", _("Being executed")
        EXECUTED = "executed", _("Executed")
        FAILED = "failed", _("Execution failed")
        MANUAL = "manual", _("To be executed by hand")

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.PROTECT, related_name="remedies")
    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.PROTECT, related_name="remedies"
    )
    order = models.ForeignKey(
        "tickets.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="remedies"
    )
    kind = models.CharField(max_length=20, choices=RemedyKind.choices)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    currency = models.CharField(max_length=3)
    # What is given besides money: the coupon or item, the replacement shipped.
    item = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    granted_role = models.CharField(max_length=20, choices=Role.choices)
    # Sent with every execution attempt: the merchant's system carries a remedy out once.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    execution = models.CharField(
        max_length=10, choices=Execution.choices, default=Execution.PENDING
    )
    execution_error = models.TextField(blank=True)
    # The signed post to the merchant's order system (one row for every try: same body, same
    # idempotency key); empty while no execution endpoint is set.
    delivery = models.ForeignKey(
        "helpdesk.WebhookDelivery",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    executed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="remedy_amount_non_negative"),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "granted_by", "kind", "currency", "created_at"],
                name="remedy_agent_day_idx",
            ),
            models.Index(
                fields=["tenant", "customer", "kind", "currency", "created_at"],
                name="remedy_customer_period_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} on #{self.ticket_id}"


class PriceDrop(TenantOwned):
    """A price cut on one SKU, with its protection window: buyers who paid more within
    ``protection_days`` before ``cut_at`` are owed the difference (Fotile's price protection).

    ``old_unit_price_amount`` is the highest unit price paid for the SKU in the window when the
    cut was recorded: what each buyer gets back is worked out from what they paid, so the old
    list price plays no part in any amount, and the record states the largest gap the cut opens.
    """

    sku = models.CharField(max_length=64)
    product_name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    old_unit_price_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES
    )
    new_unit_price_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES
    )
    # Orders placed this many days before the cut (up to the cut) are protected.
    protection_days = models.PositiveIntegerField()
    cut_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-cut_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(new_unit_price_amount__lt=models.F("old_unit_price_amount")),
                name="pricedrop_new_below_old",
            ),
            models.CheckConstraint(
                condition=Q(new_unit_price_amount__gte=0), name="pricedrop_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(protection_days__gte=1), name="pricedrop_window_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku}: {self.old_unit_price_amount} -> {self.new_unit_price_amount}"


class PriceDropCompensation(TenantOwned):
    """One order compensated for one price drop, written in the grant's transaction: the
    unique pair makes "never pay an order twice for a cut" a rule of the database."""

    price_drop = models.ForeignKey(
        PriceDrop, on_delete=models.PROTECT, related_name="compensations"
    )
    order = models.ForeignKey("tickets.Order", on_delete=models.PROTECT, related_name="+")
    # The grant that paid it (one per compensation; a plain key, so that the same-tenant
    # composite key, not a global unique index, is what refuses another merchant's remedy).
    remedy = models.ForeignKey(Remedy, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["price_drop", "order"], name="pricedropcompensation_once_per_order"
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.order_id} compensated for price drop {self.price_drop_id}"


class ApprovalRequest(TenantOwned):
    """A remedy an agent asked for past their limits, waiting for a supervisor to approve it,
    give a different amount (counter) or deny it."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved")
        COUNTERED = "countered", _("Approved with another amount")
        DENIED = "denied", _("Denied")

    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.PROTECT, related_name="approval_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=RemedyKind.choices)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    currency = models.CharField(max_length=3)
    order = models.ForeignKey(
        "tickets.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Why the agent asks, and the limit that stopped their grant (LimitExceeded's message).
    note = models.TextField(blank=True)
    refusal_limit = models.CharField(max_length=40, blank=True)
    refusal = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    # What was finally given (the asked amount, or the counter-offer); empty until then.
    granted_amount = _amount()
    # A plain key, like PriceDropCompensation's: the same-tenant composite key guards it.
    remedy = models.ForeignKey(
        Remedy, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="approvalrequest_amount_positive"
            ),
            # One open question per ticket and kind: a second identical ask finds the first.
            models.UniqueConstraint(
                fields=["tenant", "ticket", "kind"],
                condition=Q(state="pending"),
                name="approvalrequest_one_pending_per_ticket_kind",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "state", "created_at"], name="approvalrequest_state_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} on #{self.ticket_id}"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING
