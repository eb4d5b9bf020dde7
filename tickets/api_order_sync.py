"""Keeping the merchant's orders current from their shop: one order, created or updated by its
number, with its customer and lines. The API's ``POST /api/v1/orders/`` and the shop's signed
order events (helpdesk.order_feed) both call ``save_order``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from helpdesk.errors import BadInput
from helpdesk.money import AMOUNT_DIGITS, AMOUNT_PLACES
from helpdesk.permissions import Actor, Capability, require
from tickets import services
from tickets.incoming import Identity
from tickets.models import Customer, IdentityKind, Order, OrderLine

MAX_LINES = 500


class OrderCustomerSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False, help_text="A customer's id in the helpdesk")
    email = serializers.EmailField(required=False, max_length=254)
    phone = serializers.CharField(required=False, max_length=40)
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)


class OrderLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    product_name = serializers.CharField(max_length=200)
    supplier = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    manufacturer = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )
    category = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    unit_price_amount = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, min_value=Decimal("0")
    )


def _amount(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, min_value=Decimal("0"), **kwargs
    )


class OrderInputSerializer(serializers.Serializer):
    """An order as the shop describes it. On an update, fields left out keep their value; the
    lines, when given, replace the order's lines."""

    number = serializers.CharField(max_length=64)
    customer = OrderCustomerSerializer(required=False)
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False)
    total_amount = _amount(required=False)
    paid_amount = _amount(required=False)
    refunded_amount = _amount(required=False)
    placed_at = serializers.DateTimeField(required=False)
    shipped_at = serializers.DateTimeField(required=False, allow_null=True)
    delivered_at = serializers.DateTimeField(required=False, allow_null=True)
    carrier = serializers.CharField(max_length=60, required=False, allow_blank=True)
    tracking_number = serializers.CharField(max_length=80, required=False, allow_blank=True)
    lines = OrderLineInputSerializer(many=True, required=False, max_length=MAX_LINES)


ORDER_FIELDS = (
    "status",
    "currency",
    "total_amount",
    "paid_amount",
    "refunded_amount",
    "placed_at",
    "shipped_at",
    "delivered_at",
    "carrier",
    "tracking_number",
)


def checked_order(data: Any) -> dict[str, Any]:
    """``data`` as an order (BadInput naming the first wrong field otherwise)."""
    if not isinstance(data, dict):
        raise BadInput(_("Send the order as a JSON object"), field="order")
    checked = OrderInputSerializer(data=data)
    if not checked.is_valid():
        field, problems = next(iter(checked.errors.items()))
        raise BadInput(f"{field}: {_first(problems)}", field=field, errors=checked.errors)
    return dict(checked.validated_data)


def _first(problems: Any) -> str:
    if isinstance(problems, dict):
        return _first(next(iter(problems.values()), ""))
    if isinstance(problems, list):
        return _first(problems[0]) if problems else ""
    return str(problems)


def save_order(*, acting_agent: Actor, data: Any) -> tuple[Order, bool]:
    """Create the order with this number, or update it (locked while it changes), from the
    shop's description; returns the order and whether it was new. A new order needs its
    customer (an id, an email or a phone), currency and placing time; what is refunded may
    never pass what is paid."""
    require(acting_agent, Capability.WORK_TICKETS)
    order_data = checked_order(data)
    number = order_data["number"].strip().lstrip("#")
    if not number:
        raise BadInput(_("Enter an order number"), field="number")
    try:
        return _save_order(number, order_data)
    except IntegrityError:
        # Another request created this number a moment ago (the shop's feed and its API call
        # at once): the order exists now, so this one updates it.
        return _save_order(number, order_data)


def _save_order(number: str, order_data: dict[str, Any]) -> tuple[Order, bool]:
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(number=number).first()
        created = order is None
        if order is None:
            for needed in ("customer", "currency"):
                if needed not in order_data:
                    raise BadInput(
                        _("A new order needs its %(field)s") % {"field": needed}, field=needed
                    )
            order = Order(number=number, placed_at=timezone.now())
        if "customer" in order_data:
            order.customer = _customer(order_data["customer"])
        for field in ORDER_FIELDS:
            if field in order_data:
                setattr(order, field, order_data[field])
        if order.refunded_amount > order.paid_amount:
            raise BadInput(
                _("The refunded amount cannot be more than the paid amount"),
                field="refunded_amount",
            )
        order.save()
        if "lines" in order_data:
            order.lines.all().delete()
            OrderLine.objects.bulk_create(
                [
                    OrderLine(tenant_id=order.tenant_id, order=order, **line)
                    for line in order_data["lines"]
                ]
            )
    return order, created


def _customer(described: dict[str, Any]) -> Customer:
    if described.get("id") is not None:
        customer = Customer.objects.filter(pk=described["id"]).first()
        if customer is None:
            raise BadInput(_("This merchant has no such customer"), field="customer")
        return customer
    identities = [
        Identity(kind, described[kind])
        for kind in (IdentityKind.EMAIL, IdentityKind.PHONE)
        if described.get(kind)
    ]
    if not identities:
        raise BadInput(_("Say who the customer is: their id, email or phone"), field="customer")
    return services.customer_for(identities=identities, name=described.get("name", ""))
