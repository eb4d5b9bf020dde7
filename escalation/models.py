"""What a merchant lets its people give customers, and what they gave.

An ``EmpowermentPolicy`` per merchant holds the rolling customer period and where remedies are
executed; ``RemedyLimit`` rows say, per role (or for one person, overriding the role), remedy
kind and currency, how much may be given. No row for a currency: nothing in it without approval.
A ``Remedy`` is one grant, executed against the merchant's order system.
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

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

    # Empty only for a price-drop batch (``price_drop``), which asks for many orders at once.
    ticket = models.ForeignKey(
        "tickets.Ticket",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_requests",
    )
    price_drop = models.ForeignKey(
        PriceDrop, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # A batch's orders (primary keys) and what each is owed, as {"order": pk, "amount": "12.50"}:
    # ``amount`` is their total.
    batch_orders = models.JSONField(default=list, blank=True)
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
            models.CheckConstraint(
                condition=Q(ticket__isnull=False) | Q(price_drop__isnull=False),
                name="approvalrequest_ticket_or_batch",
            ),
            # One open question per ticket and kind: a second identical ask finds the first.
            models.UniqueConstraint(
                fields=["tenant", "ticket", "kind"],
                condition=Q(state="pending"),
                name="approvalrequest_one_pending_per_ticket_kind",
            ),
            models.UniqueConstraint(
                fields=["tenant", "price_drop"],
                condition=Q(state="pending", ticket__isnull=True),
                name="approvalrequest_one_pending_batch_per_drop",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "state", "created_at"], name="approvalrequest_state_idx"
            ),
        ]

    def __str__(self) -> str:
        where = f"#{self.ticket_id}" if self.ticket_id else f"price drop {self.price_drop_id}"
        return f"{self.get_kind_display()} {self.amount} {self.currency} on {where}"

    @property
    def is_batch(self) -> bool:
        return self.price_drop_id is not None and self.ticket_id is None

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING


# Said by a customer who wants a supervisor; a merchant edits the list (one phrase a line).
DEFAULT_SUPERVISOR_PHRASES = [
    "supervisor",
    "manager",
    "someone in charge",
    "escalate",
    "speak to your boss",
    "主管",
    "经理",
    "领导",
    "上级",
    "负责人",
    "找你们老板",
]


def default_supervisor_phrases() -> list[str]:
    return list(DEFAULT_SUPERVISOR_PHRASES)


class EscalationPolicy(TenantOwned):
    """A merchant's escalation rules: which triggers escalate a ticket, the rate it aims to
    stay under, the remedy budget and the defect-rate alert. One per merchant, created with
    its defaults on demand (``escalation.escalations.policy``)."""

    # The share of complaint tickets that may reach a supervisor, in percent, over a rolling
    # 7-day window: above it (not at it) supervisors are alerted, once per crossing, when the
    # window holds at least ``min_complaints`` complaint tickets. A target, never a gate.
    threshold_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("3.00"))
    min_complaints = models.PositiveIntegerField(default=30)
    # Triggers, each switchable.
    on_over_limit = models.BooleanField(default=True)
    on_customer_request = models.BooleanField(default=True)
    supervisor_phrases = models.JSONField(default=default_supervisor_phrases, blank=True)
    on_manual = models.BooleanField(default=True)
    on_first_response_breach = models.BooleanField(default=True)
    on_resolution_breach = models.BooleanField(default=True)
    # Repeated contact: ``repeat_contacts`` contacts about one order (or one ticket without an
    # order) within ``repeat_days`` days.
    on_repeat_contact = models.BooleanField(default=True)
    repeat_contacts = models.PositiveIntegerField(default=3)
    repeat_days = models.PositiveIntegerField(default=7)
    # What remedies may cost in a calendar month, in one currency; empty: no budget shown.
    monthly_budget_amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True, blank=True
    )
    budget_currency = models.CharField(max_length=3, blank=True)
    # A product or supplier whose complaints pass this share of its orders (30 days, at least
    # ``defect_min_orders`` orders) raises an alert: Amazon's 1% order defect rate.
    defect_rate_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("1.00")
    )
    defect_min_orders = models.PositiveIntegerField(default=20)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="escalationpolicy_one_per_tenant"),
            models.CheckConstraint(
                condition=Q(threshold_percent__gte=0, threshold_percent__lte=100)
                & Q(defect_rate_percent__gte=0, defect_rate_percent__lte=100),
                name="escalationpolicy_percentages",
            ),
            models.CheckConstraint(
                condition=Q(repeat_contacts__gte=2, repeat_days__gte=1),
                name="escalationpolicy_repeat_sensible",
            ),
            models.CheckConstraint(
                condition=Q(monthly_budget_amount__isnull=True) | Q(monthly_budget_amount__gte=0),
                name="escalationpolicy_budget_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"Escalation policy of tenant {self.tenant_id}"


class Trigger(models.TextChoices):
    OVER_LIMIT = "over_limit", _("Remedy above the agent's limit")
    CUSTOMER_REQUEST = "customer_request", _("Customer asked for a supervisor")
    MANUAL = "manual", _("Escalated by an agent")
    FIRST_RESPONSE_BREACH = "first_response_breach", _("First-response target missed")
    RESOLUTION_BREACH = "resolution_breach", _("Resolution target missed")
    REPEAT_CONTACT = "repeat_contact", _("Repeated contact")


class Escalation(TenantOwned):
    """A ticket brought to the supervisors' attention, why, and how it was settled."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        RESOLVED = "resolved", _("Resolved")

    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.PROTECT, related_name="escalations"
    )
    trigger = models.CharField(max_length=24, choices=Trigger.choices)
    # In words: the agent's reason, the phrase the customer used, the limit passed...
    reason = models.TextField(blank=True)
    # Who escalated (an agent by hand or with a remedy past their limit); empty for the system.
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The ticket's assignee and group when it was escalated: the per-agent and per-group rates.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        "tickets.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # For an over-limit escalation: the request a supervisor decides (settling it settles this).
    approval_request = models.ForeignKey(
        ApprovalRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            # A trigger that fires again while its escalation is open finds that one.
            models.UniqueConstraint(
                fields=["tenant", "ticket", "trigger"],
                condition=Q(state="open"),
                name="escalation_one_open_per_ticket_trigger",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "state", "created_at"], name="escalation_queue_idx"),
            models.Index(fields=["tenant", "created_at"], name="escalation_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} on #{self.ticket_id}"

    @property
    def is_open(self) -> bool:
        return self.state == self.State.OPEN


class SupervisorAlert(TenantOwned):
    """Something supervisors must look at: the escalation rate above its threshold, or a
    product or supplier whose defect rate passed the merchant's limit. Raised once per
    crossing: the alert stays active (``cleared_at`` empty) until the figure falls back, and
    only then can the same ``kind`` and ``key`` alert again."""

    class Kind(models.TextChoices):
        ESCALATION_RATE = "escalation_rate", _("Escalation rate above the threshold")
        DEFECT_RATE = "defect_rate", _("Defect rate above the limit")

    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What the alert is about within its kind: "" for the merchant's rate, "sku:SP-100" or
    # "supplier:Acme Audio" for a defect rate.
    key = models.CharField(max_length=260, blank=True)
    title = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    # The figures behind it (rate, counts, drivers, what-if), as shown on the dashboard.
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "key"],
                condition=Q(cleared_at__isnull=True),
                name="supervisoralert_once_per_crossing",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None
