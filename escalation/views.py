"""The ticket page's "Make it right" actions: grant a remedy, retry its execution, or record
that someone carried it out by hand. A grant past the agent's limits goes to a supervisor as
an approval request; other refusals (bad input) are HelpdeskErrors that the error middleware
shows on the ticket page."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from escalation import approvals, selectors, services
from escalation.limits import LimitExceeded
from escalation.models import Remedy
from helpdesk.money import format_money
from helpdesk.permissions import acting_agent_for_request
from tickets import selectors as ticket_selectors
from tickets.views import tenant_required


def back_to_ticket(number: int) -> HttpResponse:
    return redirect(reverse("tickets:detail", args=[number]) + "#remedies")


def tell_execution(request: HttpRequest, remedy: Remedy) -> None:
    """Tell the agent how the remedy's execution stands (done at once where Celery runs
    inline, as in tests)."""
    remedy.refresh_from_db(fields=["execution", "execution_error"])
    if remedy.execution == Remedy.Execution.EXECUTED:
        messages.success(request, _("The merchant's order system carried it out."))
    elif remedy.execution == Remedy.Execution.FAILED:
        messages.error(
            request, _("Its execution failed: %(error)s") % {"error": remedy.execution_error}
        )
    elif remedy.execution == Remedy.Execution.MANUAL:
        messages.warning(
            request,
            _("No order system is connected: carry it out by hand, then mark it executed."),
        )


@require_POST
@tenant_required
def grant(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = ticket_selectors.access_ticket(agent=acting, number=number)
    kind = request.POST.get("kind", "")
    amount = request.POST.get("amount", "").strip() or None
    note = request.POST.get("note", "")
    try:
        remedy = services.grant_remedy(
            acting_agent=acting,
            ticket=ticket,
            kind=kind,
            amount=amount,
            item=request.POST.get("item", ""),
            note=note,
        )
    except LimitExceeded as refused:
        approvals.ask_after_refusal(
            acting_agent=acting, ticket=ticket, kind=kind, amount=amount, note=note, refused=refused
        )
        messages.warning(request, _("Above your limit: sent to a supervisor for approval."))
        return back_to_ticket(ticket.number)
    messages.success(
        request,
        _("%(kind)s of %(amount)s granted.")
        % {
            "kind": remedy.get_kind_display(),
            "amount": format_money(remedy.amount, remedy.currency),
        },
    )
    tell_execution(request, remedy)
    return back_to_ticket(ticket.number)


@require_POST
@tenant_required
def retry(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    retry_execution = selectors.execution_action("retry_execution")
    if retry_execution is None:
        raise Http404("Remedies cannot be executed yet")
    acting = acting_agent_for_request(request)
    ticket = ticket_selectors.access_ticket(agent=acting, number=number)
    remedy = selectors.access_remedy(ticket=ticket, pk=pk)
    retry_execution(acting_agent=acting, remedy=remedy)
    messages.success(request, _("The remedy is being executed again."))
    tell_execution(request, remedy)
    return back_to_ticket(ticket.number)


@require_POST
@tenant_required
def mark_executed(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    mark_executed_by_hand = selectors.execution_action("mark_executed_by_hand")
    if mark_executed_by_hand is None:
        raise Http404("Remedies cannot be executed yet")
    acting = acting_agent_for_request(request)
    ticket = ticket_selectors.access_ticket(agent=acting, number=number)
    remedy = selectors.access_remedy(ticket=ticket, pk=pk)
    mark_executed_by_hand(acting_agent=acting, remedy=remedy, note=request.POST.get("note", ""))
    messages.success(request, _("The remedy is recorded as executed."))
    return back_to_ticket(ticket.number)
