"""REST API over a ticket's remedies: list and grant them, and what the caller may still give.

Authenticated like the tickets API (an API key acting as its person, or a signed-in session);
a refusal is ``{"message", "code", "extra"}`` with its status, e.g. 403 ``limit_exceeded``.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from escalation import selectors, services
from escalation.limits import Allowance
from escalation.models import Remedy
from helpdesk.errors import BadInput
from helpdesk.money import rounded
from helpdesk.permissions import acting_agent_for_request
from tickets import selectors as ticket_selectors
from tickets.models import Ticket

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
    grant one (201), or the refusal (403 ``limit_exceeded`` says which limit and by how much)."""

    serializer_class = RemedySerializer

    def ticket(self) -> Ticket:
        return ticket_selectors.access_ticket(
            agent=acting_agent_for_request(self.request), number=self.kwargs["number"]
        )

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.ticket_remedies(ticket=self.ticket())

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
        remedy = services.grant_remedy(
            acting_agent=acting,
            ticket=ticket,
            kind=kind,
            # Strings and whole numbers; a JSON float is refused, amounts are exact.
            amount=amount,
            item=text_field(data, "item", MAX_ITEM_CHARS),
            note=text_field(data, "note", MAX_NOTE_CHARS),
        )
        remedy.refresh_from_db()
        return Response(RemedySerializer(remedy).data, status=status.HTTP_201_CREATED)


class TicketAllowanceApi(APIView):
    """GET: what the caller may still give on the ticket, per remedy kind in ladder order."""

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
