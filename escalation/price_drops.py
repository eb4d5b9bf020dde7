"""Price protection, Fotile's practice: a merchant records a price cut on a SKU with a protection
window; the helpdesk finds who paid more for it within the window, and anyone who may give
price-protection compensation pays each of those orders the difference, within their limits,
telling the customer where they talk to the shop.

What an order is owed is worked out from what was paid on it, line by line:
(paid unit price - new unit price) x quantity, rounded to the currency. Every payment goes
through ``escalation.services.grant_remedy``, so a batch can never pass a limit, and is written
with a ``PriceDropCompensation`` row in the same transaction, so an order is never paid twice
for one cut. The orders of a batch past the person's limits go together to a supervisor as one
approval request (``ApprovalRequest`` with ``price_drop`` and ``batch_orders``, no ticket);
approving it pays them with ``pay_batch`` in the supervisor's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from escalation import approvals
from escalation.limits import LimitExceeded, amount_text, limit_for
from escalation.models import (
    ApprovalRequest,
    PriceDrop,
    PriceDropCompensation,
    Remedy,
    RemedyKind,
    RemedyLimit,
)
from escalation.services import grant_remedy
from helpdesk.errors import BadInput, HelpdeskError, PermissionDenied
from helpdesk.money import checked_amount, checked_currency, format_money, rounded
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel, Customer, Message, Order, OrderLine, Ticket
from tickets.services import open_ticket, reply_to_customer

MAX_PROTECTION_DAYS = 365
# The largest unit price the amount columns hold (19 digits, 4 of them decimals).
MAX_UNIT_PRICE = Decimal(10) ** 15
# Orders that were called off or paid back in full are owed nothing.
CALLED_OFF = (Order.Status.CANCELLED, Order.Status.REFUNDED)
CLOSED_TICKET = (Ticket.Status.SOLVED, Ticket.Status.CLOSED)
# A ticket opened for the compensation says so in the ticket list.
REASON_CODE = "price_protection"
# Limits no approval lifts: nobody may pay back more than was paid on the order.
HARD_LIMITS = frozenset({"order_refundable"})


# --- who may compensate -------------------------------------------------------------------------


def may_compensate(acting_agent: ActingAgent, *, currency: str = "") -> bool:
    """Whether the person may pay price-protection compensation: supervisors and up always
    (within their limits), others when a price-protection limit is set for them or their role,
    in ``currency`` (in any currency when empty)."""
    if acting_agent.can(Capability.SUPERVISE):
        return True
    if acting_agent.membership is None or not acting_agent.can(Capability.WORK_TICKETS):
        return False
    if currency:
        return (
            limit_for(acting_agent, kind=RemedyKind.PRICE_PROTECTION, currency=currency) is not None
        )
    return (
        RemedyLimit.objects.filter(kind=RemedyKind.PRICE_PROTECTION)
        .filter(Q(user=acting_agent.user) | Q(user__isnull=True, role=acting_agent.role))
        .exists()
    )


def require_compensator(acting_agent: ActingAgent, *, currency: str = "") -> None:
    """Refuse (403, nothing written) unless ``may_compensate``."""
    require(acting_agent, Capability.WORK_TICKETS)
    if not may_compensate(acting_agent, currency=currency):
        raise PermissionDenied(
            _("Only supervisors and people with a price-protection limit compensate price cuts")
        )


# --- recording a price cut ---------------------------------------------------------------------


def record_price_drop(
    *,
    acting_agent: ActingAgent,
    sku: str,
    new_unit_price: Decimal | str,
    protection_days: int | str,
    cut_at: datetime | None = None,
    currency: str = "",
) -> PriceDrop:
    """Record that ``sku`` now sells for ``new_unit_price`` (supervisors and up): orders placed
    within ``protection_days`` before ``cut_at`` (default now) at a higher price are owed the
    difference.

    The old price is not typed in: it is the highest unit price paid for the SKU in the window,
    in ``currency`` (default the merchant's). A cut that leaves nobody having paid more is
    refused, since there is nothing to compensate.
    """
    require(acting_agent, Capability.SUPERVISE)
    sku = (sku or "").strip()
    if not sku:
        raise BadInput(_("A price cut needs the SKU it is for"), field="sku")
    if len(sku) > PriceDrop._meta.get_field("sku").max_length:
        raise BadInput(_("That SKU is longer than any product's"), field="sku")
    currency = checked_currency(currency or require_tenant().default_currency)
    new_price = checked_amount(new_unit_price, currency, field="new_unit_price")
    if new_price >= MAX_UNIT_PRICE:
        raise BadInput(
            _("%(value)s is more than any price") % {"value": new_unit_price},
            field="new_unit_price",
        )
    days = _checked_protection_days(protection_days)
    now = timezone.now()
    cut_at = cut_at or now
    if cut_at > now:
        raise BadInput(_("Record a price cut once it has taken effect"), field="cut_at")
    dearest = (
        _lines_in_window(
            sku=sku, currency=currency, starts_at=cut_at - timedelta(days=days), cut_at=cut_at
        )
        .order_by("-unit_price_amount", "-order__placed_at", "-pk")
        .first()
    )
    if dearest is None or dearest.unit_price_amount <= new_price:
        raise BadInput(
            _(
                "Nobody paid more than %(price)s for %(sku)s in the %(days)s days before the "
                "cut: there is nothing to compensate"
            )
            % {"price": format_money(new_price, currency), "sku": sku, "days": days},
            field="new_unit_price",
        )
    with transaction.atomic():
        price_drop = PriceDrop.objects.create(
            sku=sku,
            product_name=dearest.product_name,
            currency=currency,
            old_unit_price_amount=dearest.unit_price_amount,
            new_unit_price_amount=new_price,
            protection_days=days,
            cut_at=cut_at,
            created_by=acting_agent.user,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.PRICE_DROP_RECORDED,
            obj=price_drop,
            details={
                "sku": sku,
                "old_unit_price": dearest.unit_price_amount,
                "new_unit_price": new_price,
                "currency": currency,
                "protection_days": days,
            },
        )
    return price_drop


def _checked_protection_days(value: int | str) -> int:
    try:
        days = int(str(value).strip())
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_PROTECTION_DAYS:
        raise BadInput(
            _("The protection window is a number of days from 1 to %(max)s")
            % {"max": MAX_PROTECTION_DAYS},
            field="protection_days",
        )
    return days


# --- who is owed what ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EligibleOrder:
    """An order owed compensation for a price cut: ``line`` is its dearest line of the SKU,
    ``difference`` what the order is owed over all of them, rounded to the currency."""

    order: Order
    line: OrderLine
    quantity: int
    difference: Decimal

    @property
    def formatted(self) -> str:
        return format_money(self.difference, self.order.currency)


def window_starts_at(price_drop: PriceDrop) -> datetime:
    """The first moment an order is protected by the cut (the cut itself is the last)."""
    return price_drop.cut_at - timedelta(days=price_drop.protection_days)


def _lines_in_window(
    *, sku: str, currency: str, starts_at: datetime, cut_at: datetime
) -> QuerySet[OrderLine]:
    """Lines of ``sku`` on orders placed in the window, in ``currency``, that still stand and
    were not paid back in full."""
    return OrderLine.objects.filter(
        sku=sku,
        order__currency=currency,
        order__placed_at__gte=starts_at,
        order__placed_at__lt=cut_at,
        order__refunded_amount__lt=F("order__paid_amount"),
    ).exclude(order__status__in=CALLED_OFF)


def _owed_lines(price_drop: PriceDrop) -> QuerySet[OrderLine]:
    return _lines_in_window(
        sku=price_drop.sku,
        currency=price_drop.currency,
        starts_at=window_starts_at(price_drop),
        cut_at=price_drop.cut_at,
    ).filter(unit_price_amount__gt=price_drop.new_unit_price_amount)


def _grouped(price_drop: PriceDrop, lines: Iterable[OrderLine]) -> list[EligibleOrder]:
    """One entry per order, in the order the lines come."""
    by_order: dict[int, list[OrderLine]] = {}
    for line in lines:
        by_order.setdefault(line.order_id, []).append(line)
    found = []
    for order_lines in by_order.values():
        order = order_lines[0].order
        owed = sum(
            (
                (line.unit_price_amount - price_drop.new_unit_price_amount) * line.quantity
                for line in order_lines
            ),
            Decimal(0),
        )
        found.append(
            EligibleOrder(
                order=order,
                line=max(order_lines, key=lambda line: line.unit_price_amount),
                quantity=sum(line.quantity for line in order_lines),
                difference=rounded(owed, order.currency),
            )
        )
    return [entry for entry in found if entry.difference > 0]


def eligible_orders(price_drop: PriceDrop) -> list[EligibleOrder]:
    """The orders owed compensation for ``price_drop``, oldest first: placed within its window
    with a line of the SKU at a higher unit price, not called off or paid back in full, and not
    yet compensated for this cut."""
    compensated = PriceDropCompensation.objects.filter(price_drop=price_drop).values("order_id")
    lines = (
        _owed_lines(price_drop)
        .exclude(order_id__in=compensated)
        .select_related("order__customer")
        .order_by("order__placed_at", "order_id", "pk")
    )
    return _grouped(price_drop, lines)


def owed_to(price_drop: PriceDrop, order: Order) -> EligibleOrder | None:
    """What ``order`` is owed for ``price_drop`` as it stands now (compensated or not)."""
    lines = _owed_lines(price_drop).filter(order=order).select_related("order__customer")
    found = _grouped(price_drop, lines.order_by("pk"))
    return found[0] if found else None


def compensations(price_drop: PriceDrop) -> QuerySet[PriceDropCompensation]:
    """The orders already compensated for ``price_drop``, newest first, with their remedy."""
    return PriceDropCompensation.objects.filter(price_drop=price_drop).select_related(
        "order", "remedy__ticket", "remedy__granted_by"
    )


# --- paying the difference ----------------------------------------------------------------------


class Outcome(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    ALREADY_COMPENSATED = "already_compensated"
    SENT_FOR_APPROVAL = "sent_for_approval"


@dataclass
class CompensationResult:
    """What became of one order in a batch: granted (and whether the customer was told),
    refused with the reason, sent to a supervisor for approval (``amount`` is what it is
    owed), or already compensated before."""

    order: Order
    outcome: Outcome
    amount: Decimal | None = None
    remedy: Remedy | None = None
    ticket: Ticket | None = None
    reason: str = ""
    # Set when the grant stands but no reply could be sent (no channel to reply on).
    notice_error: str = ""
    notice: Message | None = None
    # The limit that stopped the grant when an approval could lift it.
    refused_at_limit: LimitExceeded | None = None
    approval_request: ApprovalRequest | None = None

    @property
    def granted(self) -> bool:
        return self.outcome == Outcome.GRANTED

    def describe(self) -> str:
        """The result in a sentence, for the supervisor's page."""
        number = self.order.number
        if self.outcome == Outcome.ALREADY_COMPENSATED:
            return _("Order %(order)s: already compensated for this price cut.") % {"order": number}
        if self.outcome == Outcome.SENT_FOR_APPROVAL:
            return _(
                "Order %(order)s: %(amount)s is above your limits: sent to a supervisor for "
                "approval."
            ) % {"order": number, "amount": format_money(self.amount, self.order.currency)}
        if self.outcome == Outcome.REFUSED:
            return _("Order %(order)s: not compensated: %(reason)s") % {
                "order": number,
                "reason": self.reason,
            }
        words = {
            "order": number,
            "amount": format_money(self.amount, self.order.currency),
            "ticket": self.ticket.number,
        }
        if self.notice_error:
            return _(
                "Order %(order)s: %(amount)s granted on ticket #%(ticket)s, but the customer "
                "could not be told: %(reason)s"
            ) % {**words, "reason": self.notice_error}
        return _(
            "Order %(order)s: %(amount)s granted on ticket #%(ticket)s; the customer is told "
            "on %(channel)s."
        ) % {**words, "channel": self.ticket.get_channel_display()}


def compensate(
    *, acting_agent: ActingAgent, price_drop: PriceDrop, orders: Iterable[Order]
) -> list[CompensationResult]:
    """Pay each order what it is owed for ``price_drop`` within the person's limits, one order
    at a time, and tell each customer on the channel they use (supervisors, and anyone with a
    price-protection limit in the cut's currency).

    The orders past one of the person's limits go together to a supervisor as one approval
    request; while one waits for the cut, they are not asked for twice. An order refused for
    another reason (nothing owed, more than is left on the order) is refused with the reason
    and the rest go on; an order compensated before (or by someone else a moment ago) is
    reported as such and never paid twice. A grant stands even when the customer cannot be
    told; the result says why.
    """
    require_compensator(acting_agent, currency=price_drop.currency)
    results: list[CompensationResult] = []
    seen: set[int] = set()
    for order in orders:
        if order.pk in seen:
            continue
        seen.add(order.pk)
        result = _compensate_one(acting_agent, price_drop, order)
        if result.granted:
            _tell_customer(acting_agent, price_drop, result)
        results.append(result)
    over_limit = [result for result in results if result.refused_at_limit is not None]
    if over_limit:
        _send_for_approval(acting_agent, price_drop, over_limit)
    return results


def _compensate_one(
    acting_agent: ActingAgent, price_drop: PriceDrop, order: Order
) -> CompensationResult:
    owed: EligibleOrder | None = None
    try:
        with transaction.atomic():
            # Locked in grant_remedy's order (customer, then order): two supervisors on one
            # order wait for each other here, and the second finds the first's row.
            Customer.objects.select_for_update().get(pk=order.customer_id)
            order = Order.objects.select_for_update().select_related("customer").get(pk=order.pk)
            if PriceDropCompensation.objects.filter(price_drop=price_drop, order=order).exists():
                return CompensationResult(order=order, outcome=Outcome.ALREADY_COMPENSATED)
            owed = owed_to(price_drop, order)
            if owed is None:
                return CompensationResult(
                    order=order,
                    outcome=Outcome.REFUSED,
                    reason=_("this order is not owed anything for this price cut"),
                )
            ticket = _ticket_for(acting_agent, price_drop, order)
            remedy = grant_remedy(
                acting_agent=acting_agent,
                ticket=ticket,
                kind=RemedyKind.PRICE_PROTECTION,
                amount=owed.difference,
                order=order,
                item=price_drop.sku,
                note=_("Price protection: %(sku)s cut to %(price)s on %(date)s")
                % {
                    "sku": price_drop.sku,
                    "price": format_money(price_drop.new_unit_price_amount, price_drop.currency),
                    "date": timezone.localtime(price_drop.cut_at).date().isoformat(),
                },
            )
            PriceDropCompensation.objects.create(price_drop=price_drop, order=order, remedy=remedy)
    except LimitExceeded as exc:
        lifted = exc.extra["limit"] not in HARD_LIMITS and owed is not None
        return CompensationResult(
            order=order,
            outcome=Outcome.REFUSED,
            amount=owed.difference if lifted else None,
            reason=exc.message,
            refused_at_limit=exc if lifted else None,
        )
    except HelpdeskError as exc:
        return CompensationResult(order=order, outcome=Outcome.REFUSED, reason=exc.message)
    except IntegrityError as exc:
        # The unique pair is the last word when the locks above were somehow not enough.
        if "pricedropcompensation_once_per_order" not in str(exc):
            raise
        return CompensationResult(order=order, outcome=Outcome.ALREADY_COMPENSATED)
    return CompensationResult(
        order=order, outcome=Outcome.GRANTED, amount=remedy.amount, remedy=remedy, ticket=ticket
    )


def customer_language(customer: Customer) -> str:
    """The language to write to a customer in: theirs if known, else the merchant's."""
    return customer.locale or require_tenant().locale or "zh-hans"


def _ticket_for(acting_agent: ActingAgent, price_drop: PriceDrop, order: Order) -> Ticket:
    """The customer's open ticket about the order, else a new one on the channel they last
    wrote on (email when they never did)."""
    tickets = Ticket.objects.filter(customer_id=order.customer_id).exclude(channel=Channel.INTERNAL)
    ticket = (
        tickets.filter(order=order)
        .exclude(status__in=CLOSED_TICKET)
        .order_by("-updated_at")
        .first()
    )
    if ticket is not None:
        return ticket
    channel = (
        tickets.order_by("-created_at", "-pk").values_list("channel", flat=True).first()
        or Channel.EMAIL
    )
    with translation.override(customer_language(order.customer)):
        subject = _("Price protection: %(product)s") % {"product": price_drop.product_name}
    return open_ticket(
        acting_agent=acting_agent,
        customer=order.customer,
        subject=subject,
        channel=channel,
        order=order,
        reason_code=REASON_CODE,
    )


def _tell_customer(
    acting_agent: ActingAgent, price_drop: PriceDrop, result: CompensationResult
) -> None:
    """Reply on the compensation's ticket in the customer's language. A ticket opened for it is
    solved once the reply is sent; one the customer had open keeps its status."""
    ticket = result.ticket
    language = customer_language(result.order.customer)
    with translation.override(language):
        text = _(
            "Good news: %(product)s, which you bought in order %(order)s, now costs less. Under "
            "our price protection we are paying you the difference of %(amount)s."
        ) % {
            "product": price_drop.product_name,
            "order": result.order.number,
            "amount": format_money(result.amount, result.order.currency, language),
        }
    opened_for_it = ticket.reason_code == REASON_CODE and ticket.status == Ticket.Status.NEW
    try:
        result.notice = reply_to_customer(
            acting_agent=acting_agent,
            ticket=ticket,
            text=text,
            status=Ticket.Status.SOLVED if opened_for_it else ticket.status,
        )
    except HelpdeskError as exc:
        result.notice_error = exc.message


# --- orders past the limits: one approval request per batch -------------------------------------


def pending_batch(price_drop: PriceDrop) -> ApprovalRequest | None:
    """The request waiting for a supervisor to approve the orders of ``price_drop`` someone
    could not compensate within their limits, if any (at most one waits per cut)."""
    return (
        ApprovalRequest.objects.filter(
            price_drop=price_drop, ticket__isnull=True, state=ApprovalRequest.State.PENDING
        )
        .select_related("requested_by")
        .first()
    )


def _send_for_approval(
    acting_agent: ActingAgent, price_drop: PriceDrop, over_limit: list[CompensationResult]
) -> None:
    """Ask a supervisor, in one request, to approve the orders of ``over_limit`` (refused at a
    limit an approval lifts). While a request for the cut waits, nothing new is asked: the
    orders it lists are reported as sent, the others as refused until it is decided."""
    currency = price_drop.currency
    with transaction.atomic():
        # The cut's row serialises batches on it: two runs at once make one request.
        PriceDrop.objects.select_for_update().filter(pk=price_drop.pk).first()
        waiting = pending_batch(price_drop)
        if waiting is not None:
            listed = {entry["order"] for entry in waiting.batch_orders}
            for result in over_limit:
                if result.order.pk in listed:
                    result.outcome, result.approval_request = Outcome.SENT_FOR_APPROVAL, waiting
                else:
                    result.reason = _(
                        "%(reason)s; the orders of this price cut sent for approval earlier "
                        "wait for a supervisor: send this one once they are decided"
                    ) % {"reason": result.reason}
            return
        first = over_limit[0].refused_at_limit
        total = sum((result.amount for result in over_limit), Decimal(0))
        count = len(over_limit)
        approval = ApprovalRequest.objects.create(
            ticket=None,
            price_drop=price_drop,
            batch_orders=[
                {"order": result.order.pk, "amount": amount_text(result.amount, currency)}
                for result in over_limit
            ],
            requested_by=acting_agent.user,
            kind=RemedyKind.PRICE_PROTECTION,
            amount=total,
            currency=currency,
            note=ngettext(
                "%(count)s order above your limits", "%(count)s orders above your limits", count
            )
            % {"count": count},
            refusal=first.message,
            refusal_limit=first.extra["limit"][:40],
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.PRICE_DROP_BATCH_REQUESTED,
            obj=approval,
            details={
                "price_drop": price_drop.pk,
                "sku": price_drop.sku,
                "orders": [
                    {"order": result.order.number, "amount": result.amount} for result in over_limit
                ],
                "amount": total,
                "currency": currency,
                "limit": first.extra["limit"],
            },
        )
        approvals.announce(approval, "approval.requested")
    for result in over_limit:
        result.outcome, result.approval_request = Outcome.SENT_FOR_APPROVAL, approval


def batch_entries(approval: ApprovalRequest) -> list[tuple[Order | None, Decimal]]:
    """The orders of a batch request with what each was owed when it was asked, in its order
    (None for an order no longer found)."""
    ids = [entry["order"] for entry in approval.batch_orders]
    found = Order.objects.select_related("customer").in_bulk(ids)
    return [
        (found.get(entry["order"]), Decimal(entry["amount"])) for entry in approval.batch_orders
    ]


def pay_batch(*, acting_agent: ActingAgent, approval: ApprovalRequest) -> list[CompensationResult]:
    """Compensate the orders of an approved batch request in the supervisor's name, within
    their limits, telling each customer; an order compensated meanwhile is skipped. Runs inside
    the decision's transaction (``approvals.decide_approval``), which holds the request."""
    require(acting_agent, Capability.SUPERVISE)
    results: list[CompensationResult] = []
    for order, _asked in batch_entries(approval):
        if order is None:
            continue
        result = _compensate_one(acting_agent, approval.price_drop, order)
        if result.granted:
            _tell_customer(acting_agent, approval.price_drop, result)
        results.append(result)
    return results
