"""What the ticket page's customer card shows: who the customer is, what they are worth to the
merchant and their latest orders, read in a fixed number of queries whatever their history."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Prefetch, Sum

from tickets.models import Customer, CustomerIdentity, Order, OrderLine, Ticket

# The card lists this many orders, newest first; the customer's page more.
ORDERS_SHOWN = 10
ORDERS_ON_CUSTOMER_PAGE = 50


@dataclass(frozen=True)
class LifetimeValue:
    """What a customer paid and was refunded in one currency (never added across currencies)."""

    currency: str
    paid_amount: Decimal
    refunded_amount: Decimal
    orders: int

    @property
    def net_amount(self) -> Decimal:
        return self.paid_amount - self.refunded_amount


@dataclass(frozen=True)
class CustomerCard:
    customer: Customer
    identities: list[CustomerIdentity]
    lifetime_values: list[LifetimeValue]
    order_count: int
    orders: list[Order]
    # The ticket's linked order, with its lines (it may be another customer's order).
    linked_order: Order | None
    linked_order_is_theirs: bool = True
    more_orders: int = field(default=0)

    @property
    def linked_order_apart(self) -> bool:
        """The linked order is not among the orders listed: the card shows it on its own."""
        return self.linked_order is not None and all(
            order.pk != self.linked_order.pk for order in self.orders
        )


def _with_lines() -> Prefetch:
    return Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))


def lifetime_values(customer: Customer) -> list[LifetimeValue]:
    """Paid minus refunded over the customer's orders, one entry per currency, in one query."""
    rows = (
        Order.objects.filter(customer=customer)
        .values("currency")
        .annotate(paid=Sum("paid_amount"), refunded=Sum("refunded_amount"), orders=Count("pk"))
        .order_by("currency")
    )
    return [
        LifetimeValue(
            currency=row["currency"],
            paid_amount=row["paid"] or Decimal("0"),
            refunded_amount=row["refunded"] or Decimal("0"),
            orders=row["orders"],
        )
        for row in rows
    ]


def _added_up(orders: list[Order]) -> list[LifetimeValue]:
    """``lifetime_values`` of a customer whose every order is in ``orders``, without a query."""
    by_currency: dict[str, list[Order]] = {}
    for order in orders:
        by_currency.setdefault(order.currency, []).append(order)
    return [
        LifetimeValue(
            currency=currency,
            paid_amount=sum((o.paid_amount for o in group), Decimal("0")),
            refunded_amount=sum((o.refunded_amount for o in group), Decimal("0")),
            orders=len(group),
        )
        for currency, group in sorted(by_currency.items())
    ]


def customer_card(*, ticket: Ticket, orders_shown: int = ORDERS_SHOWN) -> CustomerCard:
    """The card of a ticket's customer: identities (with their channel), VIP standing, lifetime
    value per currency, the order count and the newest ``orders_shown`` orders with their lines;
    the ticket's linked order comes with its lines even when it is not among them."""
    customer = ticket.customer
    identities = list(
        CustomerIdentity.objects.filter(customer=customer)
        .select_related("account")
        .order_by("kind", "pk")
    )
    # One more than the card shows: when that many are not there, these are all the
    # customer's orders and their lifetime value is added up here instead of by a query.
    newest = list(
        Order.objects.filter(customer=customer)
        .prefetch_related(_with_lines())
        .order_by("-placed_at", "-pk")[: orders_shown + 1]
    )
    values = _added_up(newest) if len(newest) <= orders_shown else lifetime_values(customer)
    order_count = sum(value.orders for value in values)
    orders = newest[:orders_shown]
    linked = next((order for order in orders if order.pk == ticket.order_id), None)
    if linked is None and ticket.order_id is not None:
        linked = (
            Order.objects.filter(pk=ticket.order_id)
            .select_related("customer")
            .prefetch_related(_with_lines())
            .first()
        )
    return CustomerCard(
        customer=customer,
        identities=identities,
        lifetime_values=values,
        order_count=order_count,
        orders=orders,
        linked_order=linked,
        linked_order_is_theirs=linked is None or linked.customer_id == customer.pk,
        more_orders=max(order_count - len(orders), 0),
    )


@dataclass(frozen=True)
class CustomerOrders:
    lifetime_values: list[LifetimeValue]
    order_count: int
    orders: list[Order]


def customer_orders(
    customer: Customer, *, orders_shown: int = ORDERS_ON_CUSTOMER_PAGE
) -> CustomerOrders:
    """The customer page's orders: lifetime value per currency and the newest orders with
    their lines, in three queries."""
    values = lifetime_values(customer)
    orders = Order.objects.filter(customer=customer).prefetch_related(_with_lines())
    return CustomerOrders(
        lifetime_values=values,
        order_count=sum(value.orders for value in values),
        orders=list(orders.order_by("-placed_at", "-pk")[:orders_shown]) if values else [],
    )
