"""REST API of the supervisor's figures and the escalation queue, for supervisors and up.

Authenticated like the rest of the API (an API key acting as its person, or a signed-in
session); a person who may not supervise gets 403, a bad query parameter 400 with the reason,
both as ``{"message", "code", "extra"}``. Amounts and rates are strings ("12.50", "3.96").
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from escalation import escalations, metrics
from escalation.models import Escalation
from helpdesk.errors import BadInput
from helpdesk.money import rounded
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require

# The longest window a figure may be asked for: a year and a bit.
MAX_DAYS = 400


def supervisor(request: Request) -> ActingAgent:
    """The person calling, if their role may supervise (else 403)."""
    acting = acting_agent_for_request(request)
    require(acting, Capability.SUPERVISE)
    return acting


def days_param(request: Request, default: int) -> int:
    """``?days=``: a whole number of days from 1 to MAX_DAYS."""
    raw = request.query_params.get("days", "")
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise BadInput(
            _("days must be a whole number from 1 to %(most)s") % {"most": MAX_DAYS},
            field="days",
            value=raw[:20],
        )
    return int(raw)


def month_param(request: Request) -> date | None:
    """``?month=YYYY-MM``; none: this month."""
    raw = request.query_params.get("month", "")
    if raw == "":
        return None
    year, _dash, month = raw.partition("-")
    if not (
        raw.isascii() and len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()
    ):
        raise BadInput(_("month must be written YYYY-MM"), field="month", value=raw[:20])
    if not 1 <= int(month) <= 12 or int(year) < 2000:
        raise BadInput(_("%(month)s is not a month") % {"month": raw}, field="month")
    return date(int(year), int(month), 1)


def money_text(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else str(rounded(amount, currency))


def rate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "rate": metrics.percent_text(row["rate"])} for row in rows]


class EscalationRateApi(APIView):
    """GET ``?days=7``: the escalation rate over the window and over 30 days, against the
    threshold; the rolling ``days``-day rate for each of the last 30 days; the rate per group."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        supervisor(request)
        days = days_param(request, 7)
        found = escalations.policy()
        return Response(
            {
                "days": days,
                "rate": metrics.escalation_rate(days=days, found_policy=found).as_json(),
                "rate_30_days": metrics.escalation_rate(days=30, found_policy=found).as_json(),
                "series": metrics.rate_series(days=30, window=days),
                "groups": rate_rows(metrics.rate_by_group(days=days)),
            }
        )


class AgentMetricsApi(APIView):
    """GET ``?days=30``: per member who works tickets, what they handled in the window, their
    escalation rate and the remedies they granted."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        supervisor(request)
        days = days_param(request, 30)
        return Response(
            {
                "days": days,
                "agents": [
                    {
                        "user": row.user.pk,
                        "username": row.user.get_username(),
                        "name": row.name,
                        "role": row.role,
                        "handled": row.handled,
                        "solved_without_escalation": row.solved_without_escalation,
                        "complaints": row.complaints,
                        "escalated": row.escalated,
                        "rate": metrics.percent_text(row.rate),
                        "remedies": [
                            {**given, "amount": money_text(given["amount"], given["currency"])}
                            for given in row.remedies
                        ],
                    }
                    for row in metrics.agent_table(days=days)
                ],
            }
        )


class RemedySpendApi(APIView):
    """GET ``?month=YYYY-MM`` (default this month, in the merchant's time zone): what remedies
    cost per currency and kind, against the monthly budget."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        supervisor(request)
        first, _start, _end = metrics.month_bounds(month_param(request))
        spend = metrics.remedy_spend(month=first)
        return Response(
            {
                "month": first.strftime("%Y-%m"),
                "currencies": [
                    {
                        "currency": row["currency"],
                        "spent": money_text(row["spent"], row["currency"]),
                        "count": row["count"],
                        "budget": money_text(row["budget"], row["currency"]),
                        "share": metrics.percent_text(row["share"]),
                        "by_kind": [
                            {**kind, "amount": money_text(kind["amount"], row["currency"])}
                            for kind in row["by_kind"]
                        ],
                    }
                    for row in spend
                ],
            }
        )


class RootCausesApi(APIView):
    """GET ``?days=30``: complaint tickets by reason, product, SKU and supplier against the
    window before, and the defect rates of SKUs and suppliers."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        supervisor(request)
        days = days_param(request, 30)
        return Response(
            {
                "days": days,
                **metrics.root_causes(days=days),
                "defect_rates": rate_rows(metrics.defect_rates(days=days)),
            }
        )


class EscalationSerializer(serializers.ModelSerializer):
    ticket = serializers.IntegerField(source="ticket.number")
    subject = serializers.CharField(source="ticket.subject")
    customer = serializers.CharField(source="ticket.customer.name")
    trigger_label = serializers.CharField(source="get_trigger_display")
    raised_by = serializers.CharField(source="raised_by.get_username", default=None)
    agent = serializers.CharField(source="agent.get_username", default=None)
    group = serializers.CharField(source="group.name", default=None)
    approval_request = serializers.IntegerField(source="approval_request_id", default=None)
    resolved_by = serializers.CharField(source="resolved_by.get_username", default=None)

    class Meta:
        model = Escalation
        fields = [
            "id",
            "ticket",
            "subject",
            "customer",
            "trigger",
            "trigger_label",
            "reason",
            "raised_by",
            "agent",
            "group",
            "approval_request",
            "state",
            "resolved_by",
            "resolved_at",
            "resolution",
            "created_at",
        ]


class EscalationListApi(generics.ListAPIView):
    """GET (supervisors) ``?state=open`` (or resolved; none: all): the merchant's escalations,
    oldest first, the open ones being the supervisors' queue."""

    serializer_class = EscalationSerializer
    cursor_ordering = ("created_at", "pk")  # oldest first, in cursor pages

    def get_queryset(self) -> QuerySet[Escalation]:
        if getattr(self, "swagger_fake_view", False):  # the schema: no caller, no rows
            return Escalation.objects.none()
        supervisor(self.request)
        state = self.request.query_params.get("state", "")
        if state and state not in Escalation.State.values:
            raise BadInput(_("Unknown state %(state)s") % {"state": state[:20]}, field="state")
        if state == Escalation.State.OPEN:
            return escalations.open_escalations()
        found = Escalation.objects.select_related(
            "ticket", "ticket__customer", "agent", "group", "raised_by", "resolved_by"
        ).order_by("created_at", "pk")
        return found.filter(state=state) if state else found
