"""REST API for what agents do across tickets and customers on the workspace pages: merge a
ticket into another, merge two records of one person, list the merchant's macros and fill one in
for a ticket (the text to send; sending stays ``POST /tickets/<number>/messages/``).

Each calls the pages' own services, with their rules: who may merge what, which tickets cannot
be merged (itself, a merged or closed one), a retired macro. Another merchant's number or id
is 404, as everywhere in the API.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.errors import valid
from helpdesk.permissions import acting_agent_for_request
from tickets import macros, merging, selectors
from tickets.api import TicketDetailSerializer
from tickets.api_customers import CustomerSerializer
from tickets.models import Macro


class MergeSerializer(serializers.Serializer):
    into = serializers.IntegerField(
        min_value=1,
        help_text="The ticket number (or customer id) that stays and takes the other in",
    )


class TicketMergeApi(generics.GenericAPIView):
    """POST ``{"into": <number>}``: merge this ticket into another (its conversation, tags and
    order move there; it is closed for good, pointing at the one it went into). Never into
    itself, a merged or a closed ticket (400, why). 200: the ticket that stayed."""

    serializer_class = MergeSerializer

    @extend_schema(request=MergeSerializer, responses={200: TicketDetailSerializer})
    def post(self, request: Request, number: int) -> Response:
        acting = acting_agent_for_request(request)
        source = selectors.access_ticket(agent=acting, number=number)
        data = valid(MergeSerializer, request)
        target = selectors.access_ticket(agent=acting, number=data["into"])
        kept = merging.merge_tickets(acting_agent=acting, source=source, target=target)
        return Response(
            TicketDetailSerializer(selectors.access_ticket(agent=acting, number=kept.number)).data
        )


class CustomerMergeApi(generics.GenericAPIView):
    """POST ``{"into": <customer id>}``: the two records are one person (an email and a phone
    number that met); this one's identities, tickets and orders move into the other. 200: the
    customer that stayed."""

    serializer_class = MergeSerializer

    @extend_schema(request=MergeSerializer, responses={200: CustomerSerializer})
    def post(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        source = selectors.access_customer(agent=acting, pk=pk)
        data = valid(MergeSerializer, request)
        target = selectors.access_customer(agent=acting, pk=data["into"])
        merging.merge_customers(acting_agent=acting, source=source, target=target)
        return Response(
            CustomerSerializer(selectors.access_customer(agent=acting, pk=target.pk)).data
        )


class MacroSerializer(serializers.ModelSerializer):
    class Meta:
        model = Macro
        fields = ["id", "name", "body", "usage_count", "updated_at"]


class MacroListApi(generics.ListAPIView):
    """GET: the merchant's macros in use (retired ones are left out), most used first."""

    serializer_class = MacroSerializer
    filter_backends: list[Any] = []
    cursor_ordering = ("-usage_count", "pk")

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return macros.active_macros()


RENDERED = inline_serializer(
    "RenderedMacro",
    {
        "text": serializers.CharField(),
        "empty": serializers.ListField(child=serializers.CharField()),
        "warnings": serializers.ListField(child=serializers.CharField()),
    },
)


class MacroRenderApi(generics.GenericAPIView):
    """POST: the macro's text filled in for this ticket (the customer's name, the order's
    number...), with the variables this ticket has no value for and what to know about them.
    Counts one use of the macro. Send the text with ``POST /tickets/<number>/messages/``."""

    serializer_class = MacroSerializer

    @extend_schema(request=None, responses={200: RENDERED})
    def post(self, request: Request, number: int, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        ticket = selectors.access_ticket(agent=acting, number=number)
        macro = Macro.objects.filter(pk=pk).first()  # a retired one is refused with why
        if macro is None:
            raise Http404
        rendered = macros.render_macro(acting_agent=acting, macro=macro, ticket=ticket)
        return Response(
            {"text": rendered.text, "empty": rendered.empty, "warnings": rendered.warnings}
        )
