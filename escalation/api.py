"""REST API over a ticket's remedies: list and grant them, and what the caller may still give.

Authenticated like the tickets API (an API key acting as its person, or a signed-in session);
a refusal is ``{"message", "code", "extra"}`` with its status, e.g. 403 ``limit_exceeded``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from escalation import approvals, selectors, services
from escalation.limits import Allowance, LimitExceeded
from escalation.models import ApprovalRequest, Remedy
from helpdesk.errors import BadInput
from helpdesk.money import rounded
from helpdesk.permissions import Capability, acting_agent_for_request, require
from tickets import selectors as ticket_selectors
from tickets.models import Order, Ticket

MAX_ITEM_CHARS = 200
MAX_NOTE_CHARS = 5000


def amount_text(amount: Any, currency: str) -> str | None:
    """An amount as a string with the currency's decimal places ("300.00", "300" in JPY)."""
    return None if amount is None else str(rounded(amount, currency))


class RemedySerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()
    order = serializers.CharField(source="order.number", default=None)
    granted_by = serializers.CharField(source="granted_by.get_username")

    class Meta:
        model = Remedy
        fields = [
            "id",
            "kind",
            "amount",
            "currency",
            "item",
            "note",
            "order",
            "granted_by",
            "granted_role",
            "idempotency_key",
            "execution",
            "execution_error",
            "executed_at",
            "created_at",
        ]

    def get_amount(self, remedy: Remedy) -> str | None:
        return amount_text(remedy.amount, remedy.currency)


class ApprovalRequestSerializer(serializers.ModelSerializer):
    """A request on a ticket, or a price-drop batch: ``ticket`` and ``customer`` null,
    ``price_drop`` ``{"id", "sku"}`` and ``batch_orders`` ``[{"order": number, "amount"}]``
    (what each order was owed when asked; ``amount`` is their total). Give the serializer
    ``order_numbers`` (pk to number) in its context to list many batches without a query each."""

    ticket = serializers.IntegerField(source="ticket.number", default=None)
    customer = serializers.CharField(source="ticket.customer.name", default=None)
    price_drop = serializers.SerializerMethodField()
    batch_orders = serializers.SerializerMethodField()
    order = serializers.CharField(source="order.number", default=None)
    requested_by = serializers.CharField(source="requested_by.get_username")
    decided_by = serializers.CharField(source="decided_by.get_username", default=None)
    amount = serializers.SerializerMethodField()
    granted_amount = serializers.SerializerMethodField()
    remedy = serializers.IntegerField(source="remedy_id", default=None)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "ticket",
            "customer",
            "price_drop",
            "batch_orders",
            "order",
            "kind",
            "amount",
            "currency",
            "note",
            "refusal",
            "refusal_limit",
            "requested_by",
            "state",
            "decided_by",
            "decided_at",
            "decision_reason",
            "granted_amount",
            "remedy",
            "created_at",
        ]

    def get_amount(self, approval: ApprovalRequest) -> str | None:
        return amount_text(approval.amount, approval.currency)

    def get_granted_amount(self, approval: ApprovalRequest) -> str | None:
        return amount_text(approval.granted_amount, approval.currency)

    def get_price_drop(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        if not approval.is_batch:
            return None
        return {"id": approval.price_drop_id, "sku": approval.price_drop.sku}

    def get_batch_orders(self, approval: ApprovalRequest) -> list[dict[str, Any]] | None:
        if not approval.is_batch:
            return None
        numbers = self.context.get("order_numbers")
        if numbers is None:
            numbers = order_numbers([approval])
        return [
            {
                "order": numbers.get(entry["order"]),
                "amount": amount_text(Decimal(entry["amount"]), approval.currency),
            }
            for entry in approval.batch_orders
        ]


def order_numbers(approvals_listed: Iterable[ApprovalRequest]) -> dict[int, str]:
    """The numbers of the orders the batches among ``approvals_listed`` ask for, by pk: one
    query for them all."""
    ids = {
        entry["order"]
        for approval in approvals_listed
        if approval.is_batch
        for entry in approval.batch_orders
    }
    if not ids:
        return {}
    return dict(Order.objects.filter(pk__in=ids).values_list("pk", "number"))


def allowance_json(allowance: Allowance) -> dict[str, Any]:
    return {
        "kind": allowance.kind,
        "label": allowance.label,
        "empowered": allowance.empowered,
        # None with empowered: no cap at all; with not empowered: nothing without approval.
        "amount": amount_text(allowance.amount, allowance.currency),
        "currency": allowance.currency,
        "binding_limit": allowance.binding_limit or None,
        "verdict": selectors.verdict(allowance),
    }


def text_field(data: Any, name: str, limit: int) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(_("%(field)s must be text") % {"field": name}, field=name)
    if len(value) > limit:
        raise BadInput(
            _("%(field)s has at most %(limit)s characters") % {"field": name, "limit": limit},
            field=name,
        )
    return value


class TicketRemediesApi(generics.ListCreateAPIView):
    """GET: the ticket's remedies, newest first. POST ``{"kind", "amount", "item", "note"}``:
    grant one (201); past the caller's limits, 202 ``{"approval_request": {...}}``: it went to
    a supervisor for approval (its ``refusal`` says which limit and by how much)."""

    serializer_class = RemedySerializer

    def ticket(self) -> Ticket:
        return ticket_selectors.access_ticket(
            agent=acting_agent_for_request(self.request), number=self.kwargs["number"]
        )

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # the schema: no caller, no rows
            return Remedy.objects.none()
        return selectors.ticket_remedies(ticket=self.ticket())

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: RemedySerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        acting = acting_agent_for_request(request)
        ticket = self.ticket()
        data = request.data
        if not hasattr(data, "get"):
            raise BadInput(_("Send the remedy as a JSON object"))
        kind = data.get("kind", "")
        amount = data.get("amount")
        if not isinstance(kind, str):
            raise BadInput(_("%(field)s must be text") % {"field": "kind"}, field="kind")
        if isinstance(amount, bool | dict | list):
            raise BadInput(_("%(value)s is not an amount") % {"value": amount}, field="amount")
        note = text_field(data, "note", MAX_NOTE_CHARS)
        try:
            remedy = services.grant_remedy(
                acting_agent=acting,
                ticket=ticket,
                kind=kind,
                # Strings and whole numbers; a JSON float is refused, amounts are exact.
                amount=amount,
                item=text_field(data, "item", MAX_ITEM_CHARS),
                note=note,
            )
        except LimitExceeded as refused:
            approval = approvals.ask_after_refusal(
                acting_agent=acting,
                ticket=ticket,
                kind=kind,
                amount=None if amount is None else str(amount),
                note=note,
                refused=refused,
            )
            return Response(
                {"approval_request": ApprovalRequestSerializer(approval).data},
                status=status.HTTP_202_ACCEPTED,
            )
        remedy.refresh_from_db()
        return Response(RemedySerializer(remedy).data, status=status.HTTP_201_CREATED)


class TicketAllowanceApi(APIView):
    """GET: what the caller may still give on the ticket, per remedy kind in ladder order."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, number: int) -> Response:
        acting = acting_agent_for_request(request)
        ticket = ticket_selectors.access_ticket(agent=acting, number=number)
        return Response(
            {
                "ticket": ticket.number,
                "order": ticket.order.number if ticket.order_id else None,
                "currency": selectors.currency_of(ticket),
                "allowances": [
                    allowance_json(allowance)
                    for allowance in selectors.ticket_allowances(acting_agent=acting, ticket=ticket)
                ],
            }
        )


class ApprovalListApi(generics.ListAPIView):
    """GET (supervisors): the merchant's approval requests, oldest first, price-drop batches
    among them; ``?state=pending`` (or approved, countered, denied) narrows them."""

    serializer_class = ApprovalRequestSerializer
    cursor_ordering = ("created_at", "pk")  # oldest first, in cursor pages

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        listed = self.get_queryset()
        page = self.paginate_queryset(listed)
        rows = page if page is not None else list(listed)
        serializer = self.get_serializer(
            rows,
            many=True,
            context={**self.get_serializer_context(), "order_numbers": order_numbers(rows)},
        )
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # the schema: no caller, no rows
            return ApprovalRequest.objects.none()
        require(acting_agent_for_request(self.request), Capability.SUPERVISE)
        state = self.request.query_params.get("state", "")
        if state and state not in ApprovalRequest.State.values:
            raise BadInput(_("Unknown state %(state)s") % {"state": state}, field="state")
        return selectors.approval_requests(state=state)


class ApprovalDecisionApi(APIView):
    """POST (supervisors) ``{"decision": "approve"|"counter"|"deny", "amount", "reason"}``:
    decide a waiting request (200, the request with its remedy); 409 once it is decided. A
    price-drop batch is approved or denied (400 for a counter); approved, ``granted_amount``
    is what was paid and ``decision_reason`` says what became of each order."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: ApprovalRequestSerializer})
    def post(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        approval = selectors.access_approval_request(acting_agent=acting, pk=pk)
        data = request.data
        if not hasattr(data, "get"):
            raise BadInput(_("Send the decision as a JSON object"))
        decision = data.get("decision", "")
        amount = data.get("amount")
        if not isinstance(decision, str):
            raise BadInput(_("%(field)s must be text") % {"field": "decision"}, field="decision")
        if isinstance(amount, bool | dict | list):
            raise BadInput(_("%(value)s is not an amount") % {"value": amount}, field="amount")
        decided = approvals.decide_approval(
            acting_agent=acting,
            request=approval,
            decision=decision,
            amount=amount,
            reason=text_field(data, "reason", MAX_NOTE_CHARS),
        )
        decided = selectors.access_approval_request(acting_agent=acting, pk=decided.pk)
        return Response(ApprovalRequestSerializer(decided).data)
