"""Spam and blocked senders in the agent's pages: the ticket page's buttons (anyone who may work
the ticket) and the settings page /settings/blocked/ listing the merchant's blocks, where
supervisors and up lift them. The rules are in ``tickets.spam``."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, can_work_ticket
from helpdesk.views_settings import acting_with, render_settings
from tickets import selectors, spam
from tickets.models import Block, Ticket
from tickets.views import tenant_required

SECTION = "settings:blocks"


def _back_to(acting: ActingAgent, ticket: Ticket) -> HttpResponse:
    """The ticket again, or the list when setting it aside took it out of the person's reach
    (it was theirs only by assignment)."""
    if not can_work_ticket(acting, ticket):
        return redirect("tickets:list")
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def ticket_spam(request: HttpRequest, number: int) -> HttpResponse:
    """Mark the ticket as spam."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    spam.mark_spam(acting_agent=acting, ticket=ticket)
    messages.success(
        request,
        _("Ticket #%(number)s is marked as spam: it left the queue.") % {"number": ticket.number},
    )
    return _back_to(acting, ticket)


@require_POST
@tenant_required
def ticket_not_spam(request: HttpRequest, number: int) -> HttpResponse:
    """Put a set-aside ticket back to work."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    spam.not_spam(acting_agent=acting, ticket=ticket)
    messages.success(
        request, _("Ticket #%(number)s is back in the queue.") % {"number": ticket.number}
    )
    return redirect("tickets:detail", number=ticket.number)


def _identity_from(request: HttpRequest) -> tuple[str, str]:
    """The form's ``sender``: "kind:value" of one of the ticket customer's contacts."""
    kind, sep, value = request.POST.get("sender", "").partition(":")
    if not sep or not value:
        raise BadInput(_("Choose the sender to block"), field="sender")
    return kind, value


@require_POST
@tenant_required
def ticket_block(request: HttpRequest, number: int) -> HttpResponse:
    """Block one of the senders of the ticket; the ticket is set aside too."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    kind, value = _identity_from(request)
    block = spam.block_sender(
        acting_agent=acting,
        kind=kind,
        value=value,
        reason=request.POST.get("reason", ""),
        ticket=ticket,
    )
    messages.success(
        request,
        _("%(sender)s is blocked: their next messages are kept aside, nobody is told.")
        % {"sender": block.value},
    )
    return _back_to(acting, ticket)


@require_POST
@tenant_required
def ticket_unblock(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    """Lift the block on one of the ticket's senders."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    block = get_object_or_404(Block, pk=pk)
    spam.lift_block(acting_agent=acting, block=block, ticket=ticket)
    messages.success(
        request,
        _("%(sender)s is no longer blocked: their next message is a normal one.")
        % {"sender": block.value},
    )
    return redirect("tickets:detail", number=ticket.number)


@tenant_required
def block_list(request: HttpRequest) -> HttpResponse:
    """The merchant's blocked senders, those lifted lately, and a form to block one by hand."""
    acting = acting_with(request, Capability.SUPERVISE)
    error = ""
    if request.method == "POST":
        try:
            block = spam.block_sender(
                acting_agent=acting,
                kind=request.POST.get("kind", ""),
                value=request.POST.get("value", ""),
                reason=request.POST.get("reason", ""),
            )
        except BadInput as exc:
            error = exc.message
        else:
            messages.success(
                request,
                _("%(sender)s is blocked: their next messages are kept aside, nobody is told.")
                % {"sender": block.value},
            )
            return redirect(SECTION)
    active, lifted = spam.blocks_for_settings()
    return render_settings(
        request,
        acting,
        "settings/blocks.html",
        {
            "active": active,
            "lifted": lifted,
            "kinds": [(kind.value, kind.label) for kind in spam.BLOCKABLE_KINDS],
            "error": error,
            "posted": request.POST if error else {},
        },
        section=SECTION,
        status=400 if error else 200,
    )


@require_POST
@tenant_required
def block_lift(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.SUPERVISE)
    block = get_object_or_404(Block, pk=pk)
    spam.lift_block(acting_agent=acting, block=block)
    messages.success(
        request,
        _("%(sender)s is no longer blocked: their next message is a normal one.")
        % {"sender": block.value},
    )
    return redirect(SECTION)
