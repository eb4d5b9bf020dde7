"""Linking a ticket's order, and merging tickets and customers: each page asks before it
merges, and the services hold the rules."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, acting_agent_for_request, tickets_in_reach
from tickets import merging, orders, selectors
from tickets.models import Customer, Ticket
from tickets.views import tenant_required

# --- the ticket's order ------------------------------------------------------------------------


@require_POST
@tenant_required
def order_link(request: HttpRequest, number: int) -> HttpResponse:
    """Link one of the merchant's orders, named by its number, to the ticket."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    order = orders.order_by_number(request.POST.get("order", ""))
    orders.link_order_to_ticket(acting_agent=acting, ticket=ticket, order=order)
    messages.success(
        request,
        _("Order %(order)s is linked to ticket #%(number)s.")
        % {"order": order.number, "number": ticket.number},
    )
    if order.customer_id != ticket.customer_id:
        messages.warning(
            request,
            _("Order %(order)s belongs to another customer: %(customer)s.")
            % {"order": order.number, "customer": order.customer},
        )
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def order_unlink(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    orders.unlink_order(acting_agent=acting, ticket=ticket)
    messages.success(
        request, _("Ticket #%(number)s is linked to no order now.") % {"number": ticket.number}
    )
    return redirect("tickets:detail", number=ticket.number)


# --- merging tickets ---------------------------------------------------------------------------


def _ticket_number(value: str) -> int | None:
    value = (value or "").strip().lstrip("#").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _ticket_in_reach(acting: ActingAgent, value: str) -> Ticket | None:
    number = _ticket_number(value)
    if number is None:
        return None
    return (
        tickets_in_reach(acting, Ticket.objects.filter(number=number))
        .select_related("customer")
        .first()
    )


@require_http_methods(["GET", "POST"])
@tenant_required
def ticket_merge(request: HttpRequest, number: int) -> HttpResponse:
    """GET: the ticket and the one named in ``into`` side by side, with a warning when they are
    different customers'; POST: merge this ticket into that one."""
    acting = acting_agent_for_request(request)
    source = selectors.access_ticket(agent=acting, number=number)
    into = request.POST.get("into") if request.method == "POST" else request.GET.get("into")
    target = _ticket_in_reach(acting, into or "")
    if request.method == "POST":
        if target is None:
            raise BadInput(_("Choose a ticket you can open to merge into"), field="into")
        merging.merge_tickets(acting_agent=acting, source=source, target=target)
        messages.success(
            request,
            _("Ticket #%(source)s is merged into #%(target)s.")
            % {"source": source.number, "target": target.number},
        )
        return redirect("tickets:detail", number=target.number)
    error = ""
    if into and target is None:
        error = _("There is no ticket %(value)s you can open.") % {"value": into.strip()[:20]}
    elif target is not None:
        error = merging.ticket_merge_refusal(source=source, target=target)
    return render(
        request,
        "tickets/merge_ticket.html",
        {"ticket": source, "target": target, "into": (into or "").strip()[:20], "error": error},
        status=400 if error else 200,
    )


# --- merging customers -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_required
def customer_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: find the customer to merge with (by email, phone or name), then both side by side;
    POST: merge this customer into the chosen one."""
    acting = acting_agent_for_request(request)
    into_id = merging.merged_customer_target(agent=acting, pk=pk)
    if into_id is not None:
        return redirect("tickets:customer", pk=into_id)
    customer = selectors.access_customer(agent=acting, pk=pk)
    data = request.POST if request.method == "POST" else request.GET
    into = (data.get("into") or "").strip()
    target = None
    if into:
        if not into.isdigit():
            raise Http404("No such customer")
        target = selectors.access_customer(agent=acting, pk=int(into))
    if request.method == "POST":
        if target is None:
            raise BadInput(_("Choose the customer to merge with"), field="into")
        merged = merging.merge_customers(acting_agent=acting, source=customer, target=target)
        messages.success(
            request,
            _(
                "%(source)s is merged into %(target)s: %(identities)s contacts, %(tickets)s "
                "tickets, %(orders)s orders and %(events)s events moved."
            )
            % {
                "source": customer,
                "target": target,
                "identities": merged.identities,
                "tickets": merged.tickets,
                "orders": merged.orders,
                "events": merged.events,
            },
        )
        return redirect("tickets:customer", pk=target.pk)
    query = data.get("q", "").strip()[:100]
    error, status = "", 200
    if target is not None:
        error = merging.customer_merge_refusal(source=customer, target=target)
        status = 400 if error else 200
    if target is not None and not error and not merging.may_merge_customer(acting, customer):
        error = _("Some of this customer's tickets belong to groups you do not work in")
        status = 403
    return render(
        request,
        "tickets/merge_customer.html",
        {
            "customer": customer,
            "target": target,
            "q": query,
            "candidates": (
                merging.merge_candidates(agent=acting, customer=customer, query=query)
                if query
                else []
            ),
            "sides": _sides(customer, target) if target is not None else [],
            "error": error,
        },
        status=status,
    )


def _sides(*customers: Customer) -> list[dict[str, object]]:
    """What the confirmation shows of each customer: contacts and how much history they have."""
    return [
        {
            "customer": customer,
            "identities": list(customer.identities.select_related("account").order_by("kind")),
            "tickets": customer.tickets.count(),
            "orders": customer.orders.count(),
        }
        for customer in customers
    ]
