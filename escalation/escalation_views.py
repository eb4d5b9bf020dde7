"""The ticket page's escalation actions: an agent brings the ticket to a supervisor, saying why;
a supervisor settles an escalation, saying how. Each answers with a redirect and a message;
input a person can get wrong comes back as a message, never an error page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from escalation import escalations
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.permissions import acting_agent_for_request
from tickets import selectors as ticket_selectors
from tickets.views import tenant_required


def back_to_ticket(number: int) -> HttpResponse:
    return redirect(reverse("tickets:detail", args=[number]) + "#escalations")


def back_to(request: HttpRequest, number: int) -> HttpResponse:
    """Where the form asked to go back to (the supervisor dashboard), if it is on this site;
    else the ticket."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(wanted)
    return back_to_ticket(number)


@require_POST
@tenant_required
def escalate(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = ticket_selectors.access_ticket(agent=acting, number=number)
    try:
        escalations.escalate_by_hand(
            acting_agent=acting, ticket=ticket, reason=request.POST.get("reason", "")
        )
    except (BadInput, InvalidTransition) as refused:
        messages.error(request, refused.message)
        return back_to_ticket(ticket.number)
    messages.success(request, _("The ticket was escalated to a supervisor."))
    return back_to_ticket(ticket.number)


@require_POST
@tenant_required
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    escalation = escalations.access_escalation(acting_agent=acting, pk=pk)
    number = escalation.ticket.number
    try:
        escalations.resolve_escalation(
            acting_agent=acting,
            escalation=escalation,
            resolution=request.POST.get("resolution", ""),
        )
    except (BadInput, InvalidTransition) as refused:
        messages.error(request, refused.message)
        return back_to(request, number)
    messages.success(request, _("The escalation was resolved."))
    return back_to(request, number)
