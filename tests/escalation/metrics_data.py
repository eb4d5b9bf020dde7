"""Ticket data for the escalation-rate tests, written straight to the tables (many rows, dated
in the past) in the active tenant: reason codes, complaint tickets, escalations, remedies."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from escalation.models import ApprovalRequest, Escalation, Remedy, Trigger
from helpdesk.models import Role
from helpdesk.tenancy import require_tenant
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets.models import Customer, ReasonCode, Ticket

_numbers = itertools.count(1)


def reason_codes() -> None:
    """Two complaint codes and one that is not a complaint."""
    ReasonCode.objects.create(code="damaged", label="Arrived damaged 到货破损", is_complaint=True)
    ReasonCode.objects.create(code="late", label="Late delivery", is_complaint=True)
    ReasonCode.objects.create(code="question", label="Product question", is_complaint=False)


def customer() -> Customer:
    found = Customer.objects.filter(name="Metrics buyer").first()
    return found or CustomerFactory(name="Metrics buyer")


def tickets(
    count: int,
    *,
    reason: str = "damaged",
    escalated: int = 0,
    ago: timedelta = timedelta(days=1),
    now: datetime | None = None,
    **fields: object,
) -> list[Ticket]:
    """``count`` tickets under ``reason`` created ``ago`` before now, the first ``escalated`` of
    them escalated."""
    tenant = require_tenant()
    buyer = fields.pop("customer", None) or customer()
    created = (now or timezone.now()) - ago
    made = Ticket.objects.bulk_create(
        Ticket(
            tenant=tenant,
            number=next(_numbers) + 1000 * tenant.pk,
            subject=f"Ticket {index}",
            channel="email",
            customer=buyer,
            reason_code=reason,
            escalated_at=created + timedelta(minutes=5) if index < escalated else None,
            **fields,
        )
        for index in range(count)
    )
    Ticket.objects.filter(pk__in=[t.pk for t in made]).update(created_at=created)
    for ticket in made:
        ticket.created_at = created
    return made


def member(username: str, role: str = Role.AGENT, display_name: str = ""):
    user = UserFactory(username=username, email=f"{username}@example.com")
    MembershipFactory(tenant=require_tenant(), user=user, role=role, display_name=display_name)
    return user


def escalate(ticket: Ticket, trigger: str = Trigger.MANUAL, **fields: object) -> Escalation:
    if ticket.escalated_at is None:
        Ticket.objects.filter(pk=ticket.pk).update(escalated_at=timezone.now())
        ticket.escalated_at = timezone.now()
    return Escalation.objects.create(ticket=ticket, trigger=trigger, **fields)


def over_limit(
    ticket: Ticket, amount: str, *, by: object, kind: str = "refund", currency: str = "CNY"
) -> Escalation:
    """An agent's request past their limit, and the escalation it raised."""
    request = ApprovalRequest.objects.create(
        ticket=ticket,
        requested_by=by,
        kind=kind,
        amount=Decimal(amount),
        currency=currency,
        state=ApprovalRequest.State.DENIED,  # decided, so a ticket may ask again
    )
    return escalate(ticket, Trigger.OVER_LIMIT, approval_request=request, raised_by=by)


def remedy(ticket: Ticket, amount: str, *, by: object, kind: str = "refund", **fields) -> Remedy:
    return Remedy.objects.create(
        ticket=ticket,
        customer=ticket.customer,
        kind=kind,
        amount=Decimal(amount),
        currency=fields.pop("currency", "CNY"),
        granted_by=by,
        granted_role=fields.pop("granted_role", Role.AGENT),
        execution=Remedy.Execution.MANUAL,
        **fields,
    )
