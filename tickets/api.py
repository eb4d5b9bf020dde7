"""REST API over tickets: one view per operation, reads through the selectors."""

from __future__ import annotations

from rest_framework import generics, serializers
from rest_framework.request import Request

from helpdesk.permissions import acting_agent_for_request
from tickets import selectors
from tickets.models import Message, Ticket


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "channel",
            "subject",
            "body_text",
            "delivery_state",
            "created_at",
        ]


class TicketSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name")
    assignee = serializers.CharField(source="assignee.username", default=None)
    order = serializers.CharField(source="order.number", default=None)

    class Meta:
        model = Ticket
        fields = [
            "number",
            "subject",
            "status",
            "priority",
            "channel",
            "customer",
            "order",
            "assignee",
            "reason_code",
            "created_at",
            "updated_at",
        ]


class TicketDetailSerializer(TicketSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "messages"]


class TicketListApi(generics.ListAPIView):
    serializer_class = TicketSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        request: Request = self.request
        return selectors.ticket_queue(
            agent=acting_agent_for_request(request),
            status=request.query_params.get("status", "all"),
            query=request.query_params.get("q", ""),
        ).select_related("order")


class TicketDetailApi(generics.RetrieveAPIView):
    serializer_class = TicketDetailSerializer

    def get_object(self) -> Ticket:
        return selectors.access_ticket(
            agent=acting_agent_for_request(self.request), number=self.kwargs["number"]
        )
