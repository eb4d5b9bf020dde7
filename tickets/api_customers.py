"""REST API over customers: list and find them, read one with their identities, create one (or
find the one their email or phone already belongs to), teach the helpdesk another identity.

Agents who work only their groups see the customers of tickets in their reach; everyone else
who works tickets sees all of the merchant's customers. Another merchant's id is 404.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import filters, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.errors import BadInput, valid
from helpdesk.permissions import (
    ActingAgent,
    Capability,
    acting_agent_for_request,
    require,
    tickets_in_reach,
    works_every_group,
)
from tickets import selectors, services
from tickets.api_filters import CustomerFilter
from tickets.incoming import Identity
from tickets.models import Customer, CustomerIdentity, IdentityKind, Ticket

# Identities a caller may give: the merchant's own across channels (channel-bound kinds such as
# a WeChat openid come from their channel).
GIVEN_KINDS = [(IdentityKind.EMAIL.value, "email"), (IdentityKind.PHONE.value, "phone")]


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerIdentity
        fields = ["kind", "value", "created_at"]


class CustomerSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Customer
        fields = ["id", "name", "locale", "is_vip", "notes", "identities", "created_at"]


class IdentityInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=GIVEN_KINDS)
    value = serializers.CharField(max_length=254)


class CustomerCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    identities = IdentityInputSerializer(many=True, min_length=1, max_length=20)


def customers_in_reach(acting: ActingAgent) -> QuerySet[Customer]:
    """The customers ``acting`` may look at (see the module), merged ones left out."""
    require(acting, Capability.WORK_TICKETS)
    customers = Customer.objects.filter(merged_into__isnull=True)
    if works_every_group(acting):
        return customers
    reachable = tickets_in_reach(acting, Ticket.objects.all()).values("customer_id")
    return customers.filter(pk__in=reachable)


class CustomerListApi(generics.ListCreateAPIView):
    """GET: the customers in the caller's reach (``?email=``, ``?phone=``, ``?name=``...).
    POST ``{"name", "identities": [{"kind": "email"|"phone", "value"}]}``: the customer those
    identities belong to (200), or a new one (201); identities nobody has are learned."""

    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    filter_backends = [*generics.ListCreateAPIView.filter_backends, filters.OrderingFilter]
    ordering_fields = ["id", "created_at", "name"]
    # Newest first by id, which the primary key's index gives at any size without a sort.
    ordering = ["-id"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Customer.objects.none()
        found = customers_in_reach(acting_agent_for_request(self.request))
        return found.prefetch_related("identities")

    @extend_schema(request=CustomerCreateSerializer, responses={201: CustomerSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        acting = acting_agent_for_request(request)
        require(acting, Capability.WORK_TICKETS)
        data = valid(CustomerCreateSerializer, request)
        identities = [Identity(given["kind"], given["value"]) for given in data["identities"]]
        newest = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        with transaction.atomic():
            customer = services.customer_for(identities=identities, name=data["name"])
        created = customer.pk > newest  # ids only grow: a customer made just now
        customer = Customer.objects.prefetch_related("identities").get(pk=customer.pk)
        return Response(
            CustomerSerializer(customer).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CustomerDetailApi(generics.RetrieveAPIView):
    """GET: one customer with their identities."""

    serializer_class = CustomerSerializer

    def get_object(self) -> Customer:
        return selectors.access_customer(
            agent=acting_agent_for_request(self.request), pk=self.kwargs["pk"]
        )


class CustomerIdentitiesApi(generics.GenericAPIView):
    """POST ``{"kind": "email"|"phone", "value"}``: another way to reach the customer (201, the
    customer); 400 when it already belongs to someone else."""

    serializer_class = CustomerSerializer

    @extend_schema(request=IdentityInputSerializer, responses={201: CustomerSerializer})
    def post(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        customer = selectors.access_customer(agent=acting, pk=pk)
        data = valid(IdentityInputSerializer, request)
        if not data["value"].strip():
            raise BadInput(_("Enter an address or a number"), field="value")
        services.add_identity(
            acting_agent=acting, customer=customer, kind=data["kind"], value=data["value"]
        )
        customer = Customer.objects.prefetch_related("identities").get(pk=customer.pk)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)
