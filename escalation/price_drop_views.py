"""Price protection pages: the merchant's price cuts with "Record a price cut" (supervisors),
and one cut's orders owed the difference with "Compensate selected".

Supervisors, and anyone with a price-protection limit, see and compensate price cuts; the
orders past their limits go to a supervisor as one approval request. Another merchant's price
cut is a 404: every lookup goes through the active merchant.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from escalation import price_drops
from escalation.models import PriceDrop
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.money import format_money
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from tickets.models import Order
from tickets.views import tenant_required

PAGE_SIZE = 50
# Order ids are bigints: anything else posted is not an order of ours.
_MAX_ID = 2**63 - 1


def _compensating(request: HttpRequest) -> ActingAgent:
    acting = acting_agent_for_request(request)
    price_drops.require_compensator(acting)
    return acting


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def price_drop_list(request: HttpRequest) -> HttpResponse:
    """The merchant's price cuts, newest first, and the form that records one (POST,
    supervisors)."""
    acting = _compensating(request)
    may_record = acting.can(Capability.SUPERVISE)
    form = {"sku": "", "new_unit_price": "", "protection_days": "30", "cut_at": "", "currency": ""}
    error = ""
    status = 200
    if request.method == "POST":
        require(acting, Capability.SUPERVISE)
        form = {key: request.POST.get(key, "").strip() for key in form}
        try:
            price_drop = price_drops.record_price_drop(
                acting_agent=acting,
                sku=form["sku"],
                new_unit_price=form["new_unit_price"],
                protection_days=form["protection_days"],
                cut_at=_cut_at(form["cut_at"], acting),
                currency=form["currency"],
            )
        except HelpdeskError as exc:
            error, status = exc.message, exc.status
        else:
            owed = len(price_drops.eligible_orders(price_drop))
            messages.success(
                request,
                ngettext(
                    "Price cut on %(sku)s recorded: %(count)s order is owed the difference.",
                    "Price cut on %(sku)s recorded: %(count)s orders are owed the difference.",
                    owed,
                )
                % {"sku": price_drop.sku, "count": owed},
            )
            return redirect("price_drop", pk=price_drop.pk)
    cuts = (
        PriceDrop.objects.select_related("created_by")
        .annotate(compensated=Count("compensations"))
        .order_by("-cut_at", "-pk")  # Meta.ordering is dropped where there is a GROUP BY
    )
    return render(
        request,
        "escalation/price_drop_list.html",
        {
            "page": Paginator(cuts, PAGE_SIZE).get_page(request.GET.get("page")),
            "form": form,
            "error": error,
            "default_currency": acting.tenant.default_currency,
            "may_record": may_record,
        },
        status=status,
    )


def _cut_at(value: str, acting: ActingAgent) -> datetime | None:
    """When the cut took effect, as typed (the merchant's local time); empty: now."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise BadInput(_("%(value)s is not a date and time") % {"value": value}, field="cut_at")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, ZoneInfo(acting.tenant.time_zone))
    return moment


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def price_drop_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One price cut: the orders owed the difference, with "Compensate selected" (POST), the
    request waiting for a supervisor's approval, if any, and the orders already compensated."""
    acting = _compensating(request)
    price_drop = get_object_or_404(PriceDrop.objects.select_related("created_by"), pk=pk)
    if request.method == "POST":
        orders = _selected_orders(request.POST.getlist("order"))
        if not orders:
            messages.warning(request, _("Select the orders to compensate."))
        results = price_drops.compensate(acting_agent=acting, price_drop=price_drop, orders=orders)
        for result in results:
            _tell(request, result)
        _tell_sent_for_approval(request, results)
        return redirect("price_drop", pk=price_drop.pk)
    waiting = price_drops.pending_batch(price_drop)
    return render(
        request,
        "escalation/price_drop_detail.html",
        {
            "price_drop": price_drop,
            "window_starts_at": price_drops.window_starts_at(price_drop),
            "eligible": price_drops.eligible_orders(price_drop),
            "compensations": price_drops.compensations(price_drop),
            "waiting": waiting,
            "waiting_orders": {entry["order"] for entry in waiting.batch_orders}
            if waiting
            else set(),
            "supervises": acting.can(Capability.SUPERVISE),
        },
    )


def _selected_orders(values: list[str]) -> list[Order]:
    """The merchant's orders among the posted ids, in the order they were posted."""
    ids: list[int] = []
    for value in values:
        try:
            order_id = int(value)
        except ValueError:
            continue
        if 0 < order_id <= _MAX_ID and order_id not in ids:
            ids.append(order_id)
    found = Order.objects.select_related("customer").in_bulk(ids)
    return [found[order_id] for order_id in ids if order_id in found]


def _tell(request: HttpRequest, result: price_drops.CompensationResult) -> None:
    if result.outcome == price_drops.Outcome.SENT_FOR_APPROVAL:
        return  # said once for them all
    if result.outcome == price_drops.Outcome.REFUSED:
        messages.error(request, result.describe())
    elif result.outcome == price_drops.Outcome.ALREADY_COMPENSATED:
        messages.info(request, result.describe())
    elif result.notice_error:
        messages.warning(request, result.describe())
    else:
        messages.success(request, result.describe())


def _tell_sent_for_approval(
    request: HttpRequest, results: list[price_drops.CompensationResult]
) -> None:
    """One line for the orders sent to a supervisor: how many, and what they are owed."""
    sent = [result for result in results if result.outcome == price_drops.Outcome.SENT_FOR_APPROVAL]
    if not sent:
        return
    total = sum((result.amount for result in sent), Decimal(0))
    messages.info(
        request,
        ngettext(
            "%(count)s order (total %(amount)s) sent to a supervisor for approval.",
            "%(count)s orders (total %(amount)s) sent to a supervisor for approval.",
            len(sent),
        )
        % {"count": len(sent), "amount": format_money(total, sent[0].order.currency)},
    )
