"""The supervisor's approvals page: remedies agents asked for past their limits, oldest first,
each with Approve, Counter and Deny; what was decided in the last days below.

Supervisors and up only; another merchant's request is a 404 (every lookup goes through the
active merchant). Refusals (a supervisor's own limit, a missing reason, a request decided a
moment ago) are HelpdeskErrors that the error middleware shows on the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from escalation import approvals, selectors
from escalation.models import ApprovalRequest
from helpdesk.money import format_money
from helpdesk.permissions import Capability, acting_agent_for_request, require
from tickets.views import tenant_required

DONE = {
    ApprovalRequest.State.APPROVED: gettext_lazy("Approved: %(amount)s granted."),
    ApprovalRequest.State.COUNTERED: gettext_lazy("Countered: %(amount)s granted."),
}


@require_GET
@tenant_required
def approval_list(request: HttpRequest) -> HttpResponse:
    require(acting_agent_for_request(request), Capability.SUPERVISE)
    return render(
        request,
        "escalation/approvals.html",
        {
            "pending": list(selectors.pending_approval_requests()),
            "decided": list(selectors.recently_decided_approval_requests()),
            "decided_days": selectors.DECIDED_SHOWN_DAYS,
        },
    )


@require_POST
@tenant_required
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    approval = selectors.access_approval_request(acting_agent=acting, pk=pk)
    decided = approvals.decide_approval(
        acting_agent=acting,
        request=approval,
        decision=request.POST.get("decision", ""),
        amount=request.POST.get("amount", "").strip() or None,
        reason=request.POST.get("reason", ""),
    )
    if decided.state == ApprovalRequest.State.DENIED:
        messages.success(request, _("Denied."))
    else:
        amount = format_money(decided.granted_amount, decided.currency)
        messages.success(request, str(DONE[decided.state]) % {"amount": amount})
    # The supervisor dashboard's queue posts here too, and says where to go back to.
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("escalation:approvals")
    return redirect(back)
