"""``{% ticket_escalation_panel ticket as panel %}``: what the ticket page's escalation section
shows (the ticket's escalations, and which forms the signed-in person gets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template

from escalation import escalations
from escalation.models import Escalation, Trigger
from helpdesk.permissions import Capability, acting_agent_for_request
from tickets.models import Ticket

register = template.Library()


@dataclass(frozen=True)
class EscalationPanel:
    escalations: list[Escalation]
    may_escalate: bool
    may_resolve: bool
    manual_open: bool


@register.simple_tag(takes_context=True)
def ticket_escalation_panel(context: dict[str, Any], ticket: Ticket) -> EscalationPanel:
    """Two queries: the merchant's policy and the ticket's escalations."""
    acting = acting_agent_for_request(context["request"])
    found = escalations.escalations_of(ticket)
    return EscalationPanel(
        escalations=found,
        may_escalate=escalations.may_escalate_by_hand(acting, ticket, escalations.policy()),
        may_resolve=acting.can(Capability.SUPERVISE),
        manual_open=any(e.is_open and e.trigger == Trigger.MANUAL for e in found),
    )
