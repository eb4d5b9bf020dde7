"""REST API of escalating by hand and settling escalations: the same services as the ticket
page and the supervisors' queue. (Listing them: escalation/metrics_api.py.)"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from escalation import escalations
from escalation.metrics_api import EscalationSerializer
from escalation.models import Escalation
from helpdesk.errors import valid
from helpdesk.permissions import acting_agent_for_request
from tickets import selectors


class EscalateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=escalations.MAX_TEXT_CHARS)


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=escalations.MAX_TEXT_CHARS)


def shown(pk: int) -> dict[str, Any]:
    found = Escalation.objects.select_related(
        "ticket", "ticket__customer", "agent", "group", "raised_by", "resolved_by"
    ).get(pk=pk)
    return dict(EscalationSerializer(found).data)


class TicketEscalateApi(generics.GenericAPIView):
    """POST ``{"reason"}``: bring the ticket to a supervisor (201, the escalation); 409 while
    it already waits on someone's hand escalation, 403 when the merchant switched it off."""

    serializer_class = EscalationSerializer

    @extend_schema(request=EscalateSerializer, responses={201: EscalationSerializer})
    def post(self, request: Request, number: int) -> Response:
        acting = acting_agent_for_request(request)
        ticket = selectors.access_ticket(agent=acting, number=number)
        data = valid(EscalateSerializer, request)
        raised = escalations.escalate_by_hand(
            acting_agent=acting, ticket=ticket, reason=data["reason"]
        )
        return Response(shown(raised.pk), status=status.HTTP_201_CREATED)


class EscalationResolveApi(generics.GenericAPIView):
    """POST ``{"resolution"}`` (supervisors): settle an open escalation (200); 409 once it is
    settled."""

    serializer_class = EscalationSerializer

    @extend_schema(request=ResolveSerializer, responses={200: EscalationSerializer})
    def post(self, request: Request, pk: int) -> Response:
        acting = acting_agent_for_request(request)
        found = escalations.access_escalation(acting_agent=acting, pk=pk)
        data = valid(ResolveSerializer, request)
        settled = escalations.resolve_escalation(
            acting_agent=acting, escalation=found, resolution=data["resolution"]
        )
        return Response(shown(settled.pk))
