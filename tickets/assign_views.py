"""Who works a ticket: take it, assign it, move it to another group; and the list's bulk
actions. Each ticket goes through the services, which hold the rules."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.permissions import (
    ActingAgent,
    acting_agent_for_request,
    can_work_ticket,
    tickets_in_reach,
)
from tickets import merging, people, selectors, services
from tickets.models import Group, Ticket
from tickets.views import tenant_required

# One submission changes at most this many tickets: a page of the list.
BULK_LIMIT = 100


def _assignee_from(acting: ActingAgent, value: str) -> object:
    """The person a form names: "me", nobody (""), or a member of the merchant by user id."""
    if value == "me":
        return acting.user
    if value == "":
        return None
    member = people.member_of_merchant(value)
    if member is None:
        raise BadInput(_("That person is not an agent of this merchant"), field="assignee")
    return member


def _told_assignment(request: HttpRequest, ticket: Ticket) -> None:
    if ticket.assignee_id is None:
        messages.success(
            request, _("Ticket #%(number)s is now unassigned.") % {"number": ticket.number}
        )
        return
    name = people.display_names([ticket.assignee_id]).get(ticket.assignee_id)
    messages.success(
        request,
        _("Ticket #%(number)s is now assigned to %(person)s.")
        % {"number": ticket.number, "person": name or ticket.assignee.get_username()},
    )


@require_POST
@tenant_required
def ticket_take(request: HttpRequest, number: int) -> HttpResponse:
    """The signed-in agent takes the ticket."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    services.assign_ticket(acting_agent=acting, ticket=ticket, assignee=acting.user)
    _told_assignment(request, ticket)
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def ticket_assign(request: HttpRequest, number: int) -> HttpResponse:
    """Give the ticket to a member of the merchant, or to nobody."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    assignee = _assignee_from(acting, request.POST.get("assignee", "").strip())
    services.assign_ticket(acting_agent=acting, ticket=ticket, assignee=assignee)
    _told_assignment(request, ticket)
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def ticket_group(request: HttpRequest, number: int) -> HttpResponse:
    """Move the ticket to another group's queue."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    group_id = request.POST.get("group", "")
    group = Group.objects.filter(pk=int(group_id)).first() if group_id.isdigit() else None
    if group is None:
        raise BadInput(_("Choose a group of this merchant"), field="group")
    services.move_to_group(acting_agent=acting, ticket=ticket, group=group)
    messages.success(
        request,
        _("Ticket #%(number)s moved to %(group)s.")
        % {"number": ticket.number, "group": group.name},
    )
    if not can_work_ticket(acting, ticket):
        return redirect("tickets:list")  # moved out of their reach: the page would be a 404
    return redirect("tickets:detail", number=ticket.number)


def _numbers(request: HttpRequest) -> list[int]:
    numbers = []
    for value in request.POST.getlist("tickets"):
        if not value.strip().isdigit():
            raise BadInput(
                _("%(value)s is not a ticket number") % {"value": value}, field="tickets"
            )
        numbers.append(int(value))
    if not numbers:
        raise BadInput(_("Choose at least one ticket"), field="tickets")
    if len(numbers) > BULK_LIMIT:
        raise BadInput(
            _("Choose at most %(limit)s tickets at once") % {"limit": BULK_LIMIT}, field="tickets"
        )
    return sorted(set(numbers))


def _back_to_list(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if not (
        target.startswith("/")
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    ):
        target = reverse("tickets:list")
    return HttpResponseRedirect(target)


@require_POST
@tenant_required
def bulk(request: HttpRequest) -> HttpResponse:
    """One action on several tickets of the list: assign, set status, add a tag or merge. Each
    ticket goes through its service; those refused are named with the reason, the others done."""
    acting = acting_agent_for_request(request)
    action = request.POST.get("action", "")
    numbers = _numbers(request)
    if action == "merge":
        return _bulk_merge(request, acting, numbers)
    if action == "assign":
        assignee = _assignee_from(acting, request.POST.get("assignee", "").strip())

        def apply(ticket: Ticket) -> None:
            services.assign_ticket(acting_agent=acting, ticket=ticket, assignee=assignee)

    elif action == "status":
        status = request.POST.get("status", "")
        if status not in Ticket.Status.values:
            raise BadInput(_("Unknown status %(status)s") % {"status": status}, field="status")

        def apply(ticket: Ticket) -> None:
            services.change_ticket_status(acting_agent=acting, ticket=ticket, status=status)

    elif action == "tag":
        tag = request.POST.get("tag", "").strip()
        if not tag:
            raise BadInput(_("A tag needs a name"), field="tag")

        def apply(ticket: Ticket) -> None:
            services.tag_ticket(acting_agent=acting, ticket=ticket, names=[tag])

    else:
        raise BadInput(_("Choose what to do with the tickets"), field="action")

    found = {
        t.number: t for t in tickets_in_reach(acting, Ticket.objects.filter(number__in=numbers))
    }
    done = 0
    refused = []
    for number in numbers:
        ticket = found.get(number)
        if ticket is None:
            refused.append(_("#%(number)s: no such ticket") % {"number": number})
            continue
        try:
            apply(ticket)
        except HelpdeskError as exc:
            refused.append(f"#{number}: {exc.message}")
        else:
            done += 1
    if done:
        messages.success(
            request,
            ngettext("%(count)s ticket updated.", "%(count)s tickets updated.", done)
            % {"count": done},
        )
    if refused:
        messages.error(
            request,
            ngettext(
                "%(count)s ticket was not changed: %(reasons)s",
                "%(count)s tickets were not changed: %(reasons)s",
                len(refused),
            )
            % {"count": len(refused), "reasons": "; ".join(refused)},
        )
    return _back_to_list(request)


def _bulk_merge(request: HttpRequest, acting: ActingAgent, numbers: list[int]) -> HttpResponse:
    """Merge the chosen tickets into one: the one named in ``merge_into``, else the oldest
    chosen (the lowest number). The agent lands on it, told which were refused and why."""
    into = request.POST.get("merge_into", "").strip().lstrip("#")
    if into and not into.isdigit():
        raise BadInput(_("%(value)s is not a ticket number") % {"value": into}, field="merge_into")
    target_number = int(into) if into else numbers[0]
    sources = [number for number in numbers if number != target_number]
    if not sources:
        raise BadInput(_("Choose at least two tickets to merge"), field="tickets")
    found = {
        t.number: t
        for t in tickets_in_reach(
            acting, Ticket.objects.filter(number__in=[target_number, *sources])
        )
    }
    target = found.get(target_number)
    if target is None:
        raise BadInput(
            _("#%(number)s: no such ticket") % {"number": target_number}, field="merge_into"
        )
    merged, refused, other_customers = [], [], False
    for number in sources:
        source = found.get(number)
        if source is None:
            refused.append(_("#%(number)s: no such ticket") % {"number": number})
            continue
        try:
            merging.merge_tickets(acting_agent=acting, source=source, target=target)
        except HelpdeskError as exc:
            refused.append(f"#{number}: {exc.message}")
        else:
            merged.append(f"#{number}")
            other_customers |= source.customer_id != target.customer_id
    if merged:
        messages.success(
            request,
            _("Merged %(tickets)s into #%(number)s.")
            % {"tickets": ", ".join(merged), "number": target.number},
        )
    if other_customers:
        messages.warning(
            request,
            _("Some of the merged tickets were another customer's: check whom to answer."),
        )
    if refused:
        messages.error(
            request,
            ngettext(
                "%(count)s ticket was not merged: %(reasons)s",
                "%(count)s tickets were not merged: %(reasons)s",
                len(refused),
            )
            % {"count": len(refused), "reasons": "; ".join(refused)},
        )
    if merged:
        return redirect("tickets:detail", number=target.number)
    return _back_to_list(request)
