"""The queue overview: supervisors see each group's waiting tickets and agents, and give a
waiting ticket to someone by hand.

Supervisors and up only (``SUPERVISE``); giving a ticket goes through
``tickets.services.assign_ticket``, which checks ``REASSIGN`` and writes the audit row. Another
merchant's ticket id is a 404: the lookup goes through the active merchant. The page shows the
"Click to refresh" notice of static/js/agent-events.js when tickets change.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from tickets import queues, services
from tickets.models import Ticket
from tickets.views import tenant_required

# Ids are bigints: anything else posted is not a ticket or person of ours.
_MAX_ID = 2**63 - 1


def _supervising(request: HttpRequest) -> ActingAgent:
    acting = acting_agent_for_request(request)
    require(acting, Capability.SUPERVISE)
    return acting


def _posted_id(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value.isdigit() or int(value) > _MAX_ID:
        return None
    return int(value)


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def queue_page(request: HttpRequest) -> HttpResponse:
    """Each group's queue and agents (GET); "Give to" hands a waiting ticket to someone (POST)."""
    acting = _supervising(request)
    if request.method == "POST":
        return _give_ticket(request, acting)
    rows = queues.queue_overview()
    return render(
        request,
        "tickets/queues.html",
        {
            "queues": [
                (row, queues.waiting_tickets(row.group) if row.waiting else []) for row in rows
            ],
            "waiting_limit": queues.WAITING_LIMIT,
        },
    )


def _give_ticket(request: HttpRequest, acting: ActingAgent) -> HttpResponse:
    ticket_id = _posted_id(request.POST.get("ticket"))
    ticket = Ticket.objects.filter(pk=ticket_id).first() if ticket_id is not None else None
    if ticket is None:
        raise Http404("No such ticket")
    assignee_id = _posted_id(request.POST.get("assignee"))
    membership = (
        acting.tenant.memberships.select_related("user").filter(user_id=assignee_id).first()
        if assignee_id is not None
        else None
    )
    if membership is None:
        raise BadInput(
            _("Choose an agent of this merchant to give the ticket to"), field="assignee"
        )
    services.assign_ticket(acting_agent=acting, ticket=ticket, assignee=membership.user)
    messages.success(
        request,
        _("Ticket #%(number)s given to %(agent)s.")
        % {
            "number": ticket.number,
            "agent": membership.display_name or membership.user.get_username(),
        },
    )
    return redirect("tickets:queues")
