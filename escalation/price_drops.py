"""Price protection, Fotile's practice: a merchant records a price cut on a SKU with a protection
window; the helpdesk finds who paid more for it within the window, and a supervisor pays each
of those orders the difference, within their limits, telling the customer where they talk to
the shop.

What an order is owed is worked out from what was paid on it, line by line:
(paid unit price - new unit price) x quantity, rounded to the currency. Every payment goes
through ``escalation.services.grant_remedy``, so a batch can never pass a limit, and is written
with a ``PriceDropCompensation`` row in the same transaction, so an order is never paid twice
for one cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from escalation.limits import LimitExceeded
from escalation.models import PriceDrop, PriceDropCompensation, Remedy, RemedyKind
from escalation.services import grant_remedy
from helpdesk.errors import BadInput, HelpdeskError
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


@dataclass
class CompensationResult:
    """What became of one order in a batch: granted (and whether the customer was told),
    refused with the reason, or already compensated before."""

    order: Order
    outcome: Outcome
    amount: Decimal | None = None
    remedy: Remedy | None = None
    ticket: Ticket | None = None
    reason: str = ""
    # Set when the grant stands but no reply could be sent (no channel to reply on).
    notice_error: str = ""
    notice: Message | None = None

    @property
    def granted(self) -> bool:
        return self.outcome == Outcome.GRANTED

    def describe(self) -> str:
        """The result in a sentence, for the supervisor's page."""
        number = self.order.number
        if self.outcome == Outcome.ALREADY_COMPENSATED:
            return _("Order %(order)s: already compensated for this price cut.") % {"order": number}
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
    """Pay each order what it is owed for ``price_drop`` (supervisors and up, within their
    limits), one order at a time, and tell each customer on the channel they use.

    An order past a limit is refused with the limit's reason and the rest go on; an order
    compensated before (or by someone else a moment ago) is reported as such and never paid
    twice. A grant stands even when the customer cannot be told; the result says why.
    """
    require(acting_agent, Capability.SUPERVISE)
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
    return results


def _compensate_one(
    acting_agent: ActingAgent, price_drop: PriceDrop, order: Order
) -> CompensationResult:
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
        return CompensationResult(order=order, outcome=Outcome.REFUSED, reason=exc.message)
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
