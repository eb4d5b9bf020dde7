"""Why customers contact the merchant: the reason codes agents file tickets under. The codes a
merchant marks as complaints are what the escalation rate is counted over (escalation/metrics)."""

from __future__ import annotations

from django.db import models

from helpdesk.tenancy import TenantOwned


class ReasonCode(TenantOwned):
    """One reason a ticket can be filed under, e.g. ``damaged`` "Arrived damaged 到货破损"."""

    # What ``Ticket.reason_code`` holds: short, stable, machine-readable.
    code = models.SlugField(max_length=60, allow_unicode=True)
    label = models.CharField(max_length=100)
    # Tickets under a complaint code make up the escalation rate's denominator.
    is_complaint = models.BooleanField(default=False)
    # Retired codes stay for the tickets filed under them but are no longer offered.
    active = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "label"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="reasoncode_unique_code"),
        ]

    def __str__(self) -> str:
        return self.label
