"""REST API over orders: list them, read one with its lines, and create or update one by its
number (the shop's own system calls this, or posts signed order events: helpdesk.order_feed).

Orders are read by whoever works tickets: every order for those who work every group, else the
orders of customers with a ticket in the caller's reach. Another merchant's number is 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import filters, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from escalation.api import amount_text
from helpdesk.permissions import ActingAgent, acting_agent_for_request
from tickets.api_customers import customers_in_reach
from tickets.api_filters import OrderFilter
from tickets.api_order_sync import OrderInputSerializer, save_order
from tickets.models import Order, OrderLine


class OrderLineSerializer(serializers.ModelSerializer):
    unit_price_amount = serializers.SerializerMethodField()

    class Meta:
        model = OrderLine
        fields = [
            "sku",
            "product_name",
            "supplier",
            "manufacturer",
            "category",
            "quantity",
            "unit_price_amount",
        ]

    def get_unit_price_amount(self, line: OrderLine) -> str | None:
        return amount_text(line.unit_price_amount, line.order.currency)


class OrderSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id")
    total_amount = serializers.SerializerMethodField()
    paid_amount = serializers.SerializerMethodField()
    refunded_amount = serializers.SerializerMethodField()
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "number",
            "customer",
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
            "lines",
        ]

    def get_total_amount(self, order: Order) -> str | None:
        return amount_text(order.total_amount, order.currency)

    def get_paid_amount(self, order: Order) -> str | None:
        return amount_text(order.paid_amount, order.currency)

    def get_refunded_amount(self, order: Order) -> str | None:
        return amount_text(order.refunded_amount, order.currency)


def orders_in_reach(acting: ActingAgent) -> Any:
    return Order.objects.filter(customer__in=customers_in_reach(acting)).prefetch_related(
        "lines__order"
    )


def access_order(acting: ActingAgent, number: str) -> Order:
    order = orders_in_reach(acting).filter(number=number).first()
    if order is None:
        raise Http404(_("No such order"))
    return order


class OrderListApi(generics.ListCreateAPIView):
    """GET: the orders in the caller's reach, newest placed first. POST: create or update the
    order with this number (201 new, 200 updated); given ``lines`` replace its lines."""

    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    filter_backends = [*generics.ListCreateAPIView.filter_backends, filters.OrderingFilter]
    ordering_fields = ["placed_at", "number"]
    ordering = ["-placed_at", "-pk"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return orders_in_reach(acting_agent_for_request(self.request))

    @extend_schema(request=OrderInputSerializer, responses={201: OrderSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        acting = acting_agent_for_request(request)
        order, created = save_order(acting_agent=acting, data=request.data)
        order = Order.objects.prefetch_related("lines__order").get(pk=order.pk)
        return Response(
            OrderSerializer(order).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class OrderDetailApi(generics.RetrieveAPIView):
    """GET: one order by its number, with its lines."""

    serializer_class = OrderSerializer
    lookup_field = "number"

    def get_object(self) -> Order:
        return access_order(acting_agent_for_request(self.request), self.kwargs["number"])
