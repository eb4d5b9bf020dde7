"""Writing one chunk of an orders import (tickets.import_upsert has the rules and the
customers' part): rows with the same number, one after another, are one order with a line
each; an order with a bad row is not imported at all, since half its lines would replace all of
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from tickets.api_order_sync import MAX_LINES
from tickets.import_fields import (
    LINE_FIELDS,
    ORDER_CUSTOMER_KEYS,
    CellProblem,
    amount_value,
    cell_text,
    currency_value,
    moment_value,
    quantity_value,
    status_value,
    text_value,
)
from tickets.import_files import Row
from tickets.import_upsert import (
    IMPORTED_ORDER_FIELDS,
    MAX_LENGTHS,
    ChunkOutcome,
    Contact,
    CustomerBook,
    Reading,
    fail_row,
    read_contact,
)
from tickets.models import Customer, Order, OrderLine

PAID_STATUSES = {Order.Status.PAID, Order.Status.SHIPPED, Order.Status.DELIVERED}


@dataclass
class OrderGroup:
    """The rows of one order number, one after another in the file."""

    number: str
    rows: list[Row]
    values: dict[str, Any] = field(
        default_factory=dict
    )  # order-level, from the first row that has each
    value_lines: dict[str, int] = field(default_factory=dict)
    lines: list[tuple[str, str, int, Decimal]] = field(default_factory=list)
    contact: Contact | None = None


def group_orders(rows: list[Row], reading: Reading) -> list[OrderGroup]:
    groups: list[OrderGroup] = []
    for row in rows:
        number = reading.order_number(row)
        if groups and groups[-1].number == number and number:
            groups[-1].rows.append(row)
        else:
            groups.append(OrderGroup(number=number, rows=[row]))
    return groups


def _read_order_group(group: OrderGroup, reading: Reading, stored: Order | None) -> None:
    """Check every row of the group and gather its order-level values and lines; raise
    ``_RowProblem`` for the first row that cannot be read."""
    first = group.rows[0]
    if not group.number:
        raise _RowProblem(first, CellProblem("number", _("Enter an order number")))
    if len(group.number) > MAX_LENGTHS["number"]:
        message = _("Longer than %(count)s characters") % {"count": MAX_LENGTHS["number"]}
        raise _RowProblem(first, CellProblem("number", message))
    raw_lines: list[tuple[Row, dict[str, Any]]] = []
    for row in group.rows:
        values = reading.values(row)
        for key, value in values.items():
            if key in LINE_FIELDS or key == "number":
                continue
            if key not in group.values:
                group.values[key] = value
                group.value_lines[key] = row.line
            elif cell_text(group.values[key]) != cell_text(value):
                message = _("Differs from line %(line)s of the same order") % {
                    "line": group.value_lines[key]
                }
                raise _RowProblem(row, CellProblem(key, message))
        if any(key in values for key in LINE_FIELDS):
            raw_lines.append((row, values))
    if len(raw_lines) > MAX_LINES:
        message = _("An order has at most %(count)s lines") % {"count": MAX_LINES}
        raise _RowProblem(first, CellProblem("", message))
    values = group.values
    try:
        if "currency" in values:
            values["currency"] = currency_value("currency", values["currency"])
        currency = values.get("currency") or (
            stored.currency if stored is not None else reading.currency
        )
        for key in list(values):
            values[key] = _order_value(key, values[key], reading, currency)
        if any(key in values for key in ORDER_CUSTOMER_KEYS):
            group.contact = read_contact(values, reading, ORDER_CUSTOMER_KEYS, "customer_name")
    except CellProblem as problem:
        raise _RowProblem(_row_of(group, problem.field), problem) from None
    for row, line_values in raw_lines:
        try:
            group.lines.append(_line(line_values, currency))
        except CellProblem as problem:
            raise _RowProblem(row, problem) from None


def _row_of(group: OrderGroup, key: str) -> Row:
    line = group.value_lines.get(key, group.rows[0].line)
    return next((row for row in group.rows if row.line == line), group.rows[0])


class _RowProblem(Exception):
    def __init__(self, row: Row, problem: CellProblem) -> None:
        super().__init__(problem.message)
        self.row = row
        self.problem = problem


def _order_value(key: str, value: Any, reading: Reading, currency: str) -> Any:
    if key in ORDER_CUSTOMER_KEYS or key in {"customer_name", "currency"}:
        return value  # read with the customer, or already read
    if key == "status":
        return status_value(key, value)
    if key in {"total_amount", "paid_amount"}:
        return amount_value(key, value, currency=currency)
    if key in {"placed_at", "shipped_at", "delivered_at"}:
        return moment_value(key, value, time_zone=reading.time_zone, region=reading.region)
    return text_value(key, value, max_length=MAX_LENGTHS.get(key, 200))


def _line(values: dict[str, Any], currency: str) -> tuple[str, str, int, Decimal]:
    sku = text_value("sku", values["sku"], max_length=MAX_LENGTHS["sku"]) if "sku" in values else ""
    name = (
        text_value("product_name", values["product_name"], max_length=MAX_LENGTHS["product_name"])
        if "product_name" in values
        else sku
    )
    if not name:
        raise CellProblem("product_name", _("A line needs its product name or SKU"))
    if "unit_price" not in values:
        raise CellProblem("unit_price", _("A line needs its unit price"))
    quantity = quantity_value("quantity", values["quantity"]) if "quantity" in values else 1
    price = amount_value("unit_price", values["unit_price"], currency=currency)
    return sku, name, quantity, price


def _line_key(line: tuple[str, str, int, Decimal]) -> tuple[str, str, int, Decimal]:
    sku, name, quantity, price = line
    return sku, name, quantity, price.normalize()


def import_orders(
    rows: list[Row], reading: Reading, tenant_id: int, seen: dict[str, int]
) -> ChunkOutcome:
    """Create or update the orders of one chunk's rows (inside the caller's transaction).
    ``seen`` holds the numbers of earlier chunks' orders and their first line: an order's rows
    must be together, or its lines would replace each other."""
    outcome = ChunkOutcome()
    groups = group_orders(rows, reading)
    numbers = {group.number for group in groups if group.number}
    stored = {
        order.number: order
        for order in Order.objects.select_for_update().filter(number__in=numbers)
    }
    readable: list[OrderGroup] = []
    for group in groups:
        if group.number and group.number in seen:
            message = _(
                "Order %(number)s is also on line %(line)s: put an order's rows together"
            ) % {"number": group.number, "line": seen[group.number]}
            _fail_group(outcome, group, group.rows[0], CellProblem("number", message))
            continue
        if group.number:
            seen[group.number] = group.rows[0].line
        try:
            _read_order_group(group, reading, stored.get(group.number))
            _check_order_rules(group, stored.get(group.number))
        except _RowProblem as failed:
            _fail_group(outcome, group, failed.row, failed.problem)
            continue
        readable.append(group)
    book = CustomerBook(tenant_id, (g.contact for g in readable if g.contact is not None))
    with_lines = [stored[g.number] for g in readable if g.number in stored and g.lines]
    stored_lines = _stored_lines(with_lines)
    new_orders: list[Order] = []
    changed_orders: list[Order] = []
    relined: list[tuple[Order, OrderGroup]] = []
    for group in readable:
        customer = _order_customer(book, group)
        order = stored.get(group.number)
        if order is None:
            order = _new_order(group, customer, reading, tenant_id)
            new_orders.append(order)
            relined.append((order, group))
            outcome.created += 1
            continue
        changed = _apply_order(group, order, customer)
        lines_changed = bool(group.lines) and sorted(map(_line_key, group.lines)) != (
            stored_lines.get(order.pk, [])
        )
        if lines_changed:
            relined.append((order, group))
        if changed:
            changed_orders.append(order)
        if changed or lines_changed:
            outcome.updated += 1
        else:
            outcome.unchanged += 1
    book.save()
    Order.objects.bulk_create(new_orders)
    if changed_orders:
        Order.objects.bulk_update(changed_orders, ["customer", *IMPORTED_ORDER_FIELDS])
    _replace_lines(relined, tenant_id, new_orders={order.pk for order in new_orders})
    return outcome


def _stored_lines(orders: list[Order]) -> dict[int, list[tuple[str, str, int, Decimal]]]:
    """The stored lines of these orders, comparable with a file's."""
    lines: dict[int, list[tuple[str, str, int, Decimal]]] = {}
    if not orders:
        return lines
    rows = OrderLine.objects.filter(order__in=orders).values_list(
        "order_id", "sku", "product_name", "quantity", "unit_price_amount"
    )
    for order_id, sku, name, quantity, price in rows:
        lines.setdefault(order_id, []).append(_line_key((sku, name, quantity, price)))
    for found in lines.values():
        found.sort()
    return lines


def _check_order_rules(group: OrderGroup, order: Order | None) -> None:
    """The API's rules for an order: a new one needs its customer and (from a file) the time
    it was placed; nothing refunded passes what is paid."""
    first = group.rows[0]
    if order is None:
        if group.contact is None:
            message = _("A new order needs its customer: their id in your system, email or phone")
            raise _RowProblem(first, CellProblem("", message))
        if "placed_at" not in group.values:
            message = _("A new order needs the time it was placed")
            raise _RowProblem(first, CellProblem("placed_at", message))
        return
    paid = group.values.get("paid_amount", order.paid_amount)
    if order.refunded_amount > paid:
        message = _("The refunded amount cannot be more than the paid amount")
        raise _RowProblem(_row_of(group, "paid_amount"), CellProblem("paid_amount", message))


def _order_customer(book: CustomerBook, group: OrderGroup) -> Customer | None:
    """The customer the order's rows name: found (and taught the row's contacts and name),
    else created; None when they name nobody (a stored order keeps its customer)."""
    contact = group.contact
    if contact is None:
        return None
    customer = book.find(contact)
    if customer is None:
        return book.create(contact)
    book.learn_identities(customer, contact)
    if contact.name and not customer.name:
        customer.name = contact.name
        book.mark_changed(customer)
    if (
        contact.external_id
        and contact.external_id not in book.by_external
        and not customer.external_id
    ):
        book.set_external_id(customer, contact.external_id)
    return customer


def _new_order(
    group: OrderGroup, customer: Customer | None, reading: Reading, tenant_id: int
) -> Order:
    values = group.values
    order = Order(
        tenant_id=tenant_id,
        number=group.number,
        customer=customer,
        currency=values.get("currency") or reading.currency,
    )
    for name in IMPORTED_ORDER_FIELDS:
        if name in values:
            setattr(order, name, values[name])
    if "total_amount" not in values and group.lines:
        order.total_amount = sum(
            (price * qty for _sku, _name, qty, price in group.lines), Decimal(0)
        )
    if "paid_amount" not in values and order.status in PAID_STATUSES:
        # A shop's export often has no "paid" column; an order paid for was paid in full, and
        # agents may refund only what was paid.
        order.paid_amount = order.total_amount
    return order


def _apply_order(group: OrderGroup, order: Order, customer: Customer | None) -> bool:
    """Set the file's values on a stored order; whether anything differs."""
    changed = False
    if customer is not None and (customer.pk is None or customer.pk != order.customer_id):
        order.customer = customer
        changed = True
    for name in IMPORTED_ORDER_FIELDS:
        if name in group.values and getattr(order, name) != group.values[name]:
            setattr(order, name, group.values[name])
            changed = True
    return changed


def _replace_lines(
    relined: list[tuple[Order, OrderGroup]], tenant_id: int, *, new_orders: set[int]
) -> None:
    stored = [order.pk for order, _group in relined if order.pk not in new_orders]
    if stored:
        OrderLine.objects.filter(order_id__in=stored).delete()
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                tenant_id=tenant_id,
                order=order,
                sku=sku,
                product_name=name,
                quantity=quantity,
                unit_price_amount=price,
            )
            for order, group in relined
            for sku, name, quantity, price in group.lines
        ]
    )


def _fail_group(outcome: ChunkOutcome, group: OrderGroup, bad: Row, problem: CellProblem) -> None:
    """The whole order fails: the bad row says why, its other rows point at it."""
    for row in group.rows:
        if row is bad:
            fail_row(outcome, row, [problem])
        else:
            fail_row(
                outcome,
                row,
                [
                    CellProblem(
                        "",
                        _("Not imported: line %(line)s of the same order has an error")
                        % {"line": bad.line},
                    )
                ],
            )
