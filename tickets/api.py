"""REST API over tickets and their messages: one view per operation, reads through the
selectors, every change through the same services as the agent pages (with the caller's role).

``/api/v1/tickets/`` lists (filters in tickets.api_filters, cursor pages, ``?ordering=``) and
opens tickets; ``/api/v1/tickets/<number>/`` reads and changes one (status, priority, assignee,
group, order); ``/api/v1/tickets/<number>/messages/`` lists its conversation and posts a reply
to the customer or an internal note. Another merchant's number, or a ticket outside the
caller's groups, is 404.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import filters, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.errors import BadInput, valid
from helpdesk.permissions import acting_agent_for_request
from tickets import orders, selectors, services
from tickets.api_filters import TicketFilter, merchant_members
from tickets.models import Attachment, Channel, Customer, Group, Message, Ticket

MAX_TEXT_CHARS = 50_000


class AttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "missing_reason"]


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "channel",
            "subject",
            "body_text",
            "author",
            "delivery_state",
            "attachments",
            "created_at",
        ]

    def get_author(self, message: Message) -> str | None:
        if message.author_user_id is not None:
            return message.author_user.get_username()
        if message.author_customer_id is not None:
            return message.author_customer.name or None
        return None


class TicketSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name")
    customer_id = serializers.IntegerField()
    assignee = serializers.CharField(source="assignee.username", default=None)
    group = serializers.CharField(source="group.name", default=None)
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
            "customer_id",
            "order",
            "assignee",
            "group",
            "reason_code",
            "created_at",
            "updated_at",
        ]


class TicketDetailSerializer(TicketSerializer):
    tags = serializers.SerializerMethodField()
    messages = serializers.SerializerMethodField()

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "tags", "messages"]

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, ticket: Ticket) -> list[dict[str, Any]]:
        # The conversation as the ticket page reads it: authors and files in one query each.
        return MessageSerializer(selectors.conversation(ticket=ticket), many=True).data

    def get_tags(self, ticket: Ticket) -> list[str]:
        return sorted(ticket.tags.values_list("name", flat=True))


class TicketCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(help_text="The customer's id")
    subject = serializers.CharField(max_length=255)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, default="normal")
    order = serializers.CharField(max_length=64, required=False, help_text="An order number")
    reason_code = serializers.CharField(max_length=60, required=False, default="")


class TicketChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, required=False)
    assignee = serializers.IntegerField(
        required=False, allow_null=True, help_text="A member's user id; null: nobody"
    )
    group = serializers.IntegerField(required=False, help_text="A group's id")
    order = serializers.CharField(
        max_length=64, required=False, allow_null=True, help_text="An order number; null: none"
    )
    add_tags = serializers.ListField(
        child=serializers.CharField(max_length=60), required=False, max_length=50
    )
    remove_tags = serializers.ListField(
        child=serializers.CharField(max_length=60), required=False, max_length=50
    )


class MessageCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[("reply", "reply"), ("note", "note")])
    text = serializers.CharField(max_length=MAX_TEXT_CHARS, trim_whitespace=True)
    status = serializers.ChoiceField(
        choices=Ticket.Status.choices,
        default=Ticket.Status.PENDING,
        help_text="A reply's: the status the ticket takes once it is sent",
    )
    files = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        max_length=10,
        help_text="Files to attach (multipart/form-data, one `files` part each), within the "
        "merchant's attachment limits and what the ticket's channel carries",
    )


def detail_of(request: Request, number: int) -> Response:
    ticket = selectors.access_ticket(agent=acting_agent_for_request(request), number=number)
    return Response(TicketDetailSerializer(ticket).data)


class TicketListApi(generics.ListCreateAPIView):
    """GET: the tickets in the caller's reach, newest activity first (``?ordering=`` number,
    created_at, updated_at, each with ``-`` for descending). POST: open a ticket for a customer
    (201, the ticket)."""

    serializer_class = TicketSerializer
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = TicketFilter
    ordering_fields = ["number", "created_at", "updated_at"]
    ordering = ["-updated_at", "-pk"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        request: Request = self.request
        if getattr(self, "swagger_fake_view", False):
            return Ticket.objects.none()
        return selectors.ticket_queue(
            agent=acting_agent_for_request(request),
            status=request.query_params.get("status", "all"),
            query=request.query_params.get("q", ""),
        ).select_related("order")

    @extend_schema(request=TicketCreateSerializer, responses={201: TicketDetailSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        acting = acting_agent_for_request(request)
        data = valid(TicketCreateSerializer, request)
        customer = Customer.objects.filter(pk=data["customer"]).first()
        if customer is None:
            raise BadInput(_("This merchant has no such customer"), field="customer")
        order = orders.order_by_number(data["order"]) if data.get("order") else None
        ticket = services.open_ticket(
            acting_agent=acting,
            customer=customer,
            subject=data["subject"],
            channel=data["channel"],
            order=order,
            priority=data["priority"],
            reason_code=data.get("reason_code", ""),
        )
        ticket = selectors.access_ticket(agent=acting, number=ticket.number)
        return Response(TicketDetailSerializer(ticket).data, status=status.HTTP_201_CREATED)


class TicketDetailApi(generics.GenericAPIView):
    """GET: one ticket with its tags and conversation. PATCH: change its status, priority,
    assignee, group, order or tags (``add_tags``, ``remove_tags``), each through the pages' rules (409 for a status it cannot take from where
    it is, 403 for what the caller's role may not do)."""

    serializer_class = TicketDetailSerializer

    def get(self, request: Request, number: int) -> Response:
        return detail_of(request, number)

    @extend_schema(request=TicketChangeSerializer, responses={200: TicketDetailSerializer})
    def patch(self, request: Request, number: int) -> Response:
        acting = acting_agent_for_request(request)
        ticket = selectors.access_ticket(agent=acting, number=number)
        data = valid(TicketChangeSerializer, request)
        # All of it or nothing: a change refused half-way (a status it cannot take) undoes the
        # ones before it, so the refusal the caller gets (and may replay) left no trace.
        with transaction.atomic():
            if "assignee" in data:
                assignee = None
                if data["assignee"] is not None:
                    assignee = merchant_members(request).filter(pk=data["assignee"]).first()
                    if assignee is None:
                        raise BadInput(
                            _("That person is not an agent of this merchant"), field="assignee"
                        )
                services.assign_ticket(acting_agent=acting, ticket=ticket, assignee=assignee)
            if "group" in data:
                group = Group.objects.filter(pk=data["group"]).first()
                if group is None:
                    raise BadInput(_("This merchant has no such group"), field="group")
                services.move_to_group(acting_agent=acting, ticket=ticket, group=group)
            if "order" in data:
                if data["order"]:
                    orders.link_order_to_ticket(
                        acting_agent=acting,
                        ticket=ticket,
                        order=orders.order_by_number(data["order"]),
                    )
                else:
                    orders.unlink_order(acting_agent=acting, ticket=ticket)
            if data.get("add_tags"):
                services.tag_ticket(acting_agent=acting, ticket=ticket, names=data["add_tags"])
            for name in data.get("remove_tags", []):
                services.untag_ticket(acting_agent=acting, ticket=ticket, name=name)
            if "priority" in data:
                services.change_ticket_priority(
                    acting_agent=acting, ticket=ticket, priority=data["priority"]
                )
            if "status" in data:
                services.change_ticket_status(
                    acting_agent=acting, ticket=ticket, status=data["status"]
                )
        return detail_of(request, number)


class TicketMessagesApi(generics.ListCreateAPIView):
    """GET: the ticket's conversation, oldest first. POST ``{"kind": "reply"|"note", "text"}``:
    answer the customer on the ticket's channel (sent after commit, with retries; the ticket
    takes ``status`` once it is sent) or add an internal note (201, the message)."""

    serializer_class = MessageSerializer
    cursor_ordering = ("created_at", "pk")
    filter_backends: list[Any] = []

    def ticket(self) -> Ticket:
        return selectors.access_ticket(
            agent=acting_agent_for_request(self.request), number=self.kwargs["number"]
        )

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        return selectors.conversation(ticket=self.ticket())

    @extend_schema(
        request=MessageCreateSerializer,
        responses={
            201: MessageSerializer,
            400: OpenApiResponse(
                inline_serializer(
                    "Error",
                    {
                        "message": serializers.CharField(),
                        "code": serializers.CharField(),
                        "extra": serializers.DictField(),
                    },
                )
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        acting = acting_agent_for_request(request)
        ticket = self.ticket()
        data = valid(MessageCreateSerializer, request)
        files = data.get("files", [])
        if data["kind"] == "note":
            message = services.add_note(
                acting_agent=acting, ticket=ticket, text=data["text"], attachments=files
            )
        else:
            message = services.reply_to_customer(
                acting_agent=acting,
                ticket=ticket,
                text=data["text"],
                status=data["status"],
                attachments=files,
            )
        message.refresh_from_db()
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)
