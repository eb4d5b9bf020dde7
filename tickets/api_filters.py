"""django-filter filter sets of the API's lists. Every foreign-key filter chooses among the
active merchant's rows only (the tenant manager), so another merchant's id is "not a valid
choice" (400), never a way to learn what exists there."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from rest_framework.request import Request

from helpdesk import tenancy
from helpdesk.errors import BadInput
from helpdesk.models import Membership
from tickets.models import Channel, Customer, Group, Order, Ticket
from tickets.services import normalise_identity


def merchant_members(request: Request | None) -> QuerySet[Any]:
    """The people of the active merchant (a platform table: its tenant is named here)."""
    return get_user_model().objects.filter(
        pk__in=Membership.objects.filter(tenant=tenancy.require_tenant()).values("user_id")
    )


class TicketFilter(django_filters.FilterSet):
    # status and q are applied by the selector (tickets.selectors.ticket_queue); declared here
    # so the schema lists them.
    status = django_filters.CharFilter(
        method="by_selector",
        help_text='"all" (the default), one status, or empty: the unsolved ones',
    )
    q = django_filters.CharFilter(method="by_selector", help_text="Words to search for")
    priority = django_filters.ChoiceFilter(choices=Ticket.Priority.choices)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    customer = django_filters.ModelChoiceFilter(queryset=lambda request: Customer.objects.all())
    order = django_filters.CharFilter(field_name="order__number", help_text="An order number")
    assignee = django_filters.ModelChoiceFilter(queryset=merchant_members)
    group = django_filters.ModelChoiceFilter(queryset=lambda request: Group.objects.all())
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Ticket
        fields: list[str] = []

    def by_selector(self, queryset: QuerySet[Ticket], name: str, value: Any) -> QuerySet[Ticket]:
        return queryset


class CustomerFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    email = django_filters.CharFilter(method="by_identity", help_text="An email address")
    phone = django_filters.CharFilter(method="by_identity", help_text="A phone number (E.164)")
    external = django_filters.CharFilter(
        method="by_identity", help_text="The customer's id in the merchant's system"
    )
    is_vip = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Customer
        fields: list[str] = []

    def by_identity(
        self, queryset: QuerySet[Customer], name: str, value: str
    ) -> QuerySet[Customer]:
        # Written as the helpdesk stores it (a phone in E.164, the merchant's region the
        # default); what is no address or number matches nobody.
        try:
            value = normalise_identity(
                kind=name, value=value, region=tenancy.require_tenant().phone_region
            )
        except BadInput:
            return queryset.none()
        return queryset.filter(identities__kind=name, identities__value=value)


class OrderFilter(django_filters.FilterSet):
    number = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    customer = django_filters.ModelChoiceFilter(queryset=lambda request: Customer.objects.all())
    currency = django_filters.CharFilter()
    placed_after = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields: list[str] = []
