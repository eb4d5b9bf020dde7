"""What agents keep for their work: canned replies (macros) and blocked senders."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from helpdesk.tenancy import TenantOwned


class Macro(TenantOwned):
    """A canned reply with variables such as ``{{ customer.name }}`` or ``{{ order.number }}``,
    filled in for the ticket it is used on (tickets.macros)."""

    name = models.CharField(max_length=120)
    body = models.TextField()
    # Retired macros are no longer offered.
    active = models.BooleanField(default=True)
    usage_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="macro_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Block(TenantOwned):
    """A sender whose later messages are stored as ignored, until the block is lifted."""

    kind = models.CharField(max_length=16)  # an IdentityKind value
    value = models.CharField(max_length=254)  # normalised like CustomerIdentity.value
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "value"],
                condition=Q(lifted_at__isnull=True),
                name="block_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class IgnoredReason(models.TextChoices):
    SPAM = "spam", _("Spam")
    BLOCKED = "blocked", _("Blocked sender")
