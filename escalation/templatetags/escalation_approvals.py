"""``{% pending_approvals_count %}``: how many approval requests wait, for the nav badge."""

from __future__ import annotations

from django import template

from escalation.models import ApprovalRequest
from helpdesk.tenancy import current_tenant

register = template.Library()


@register.simple_tag
def pending_approvals_count() -> int:
    """One indexed count (tenant, state); 0 outside a merchant."""
    if current_tenant() is None:
        return 0
    return ApprovalRequest.objects.filter(state=ApprovalRequest.State.PENDING).count()
