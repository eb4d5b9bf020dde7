from __future__ import annotations

from django.urls import path

from escalation import api as escalation_api
from escalation import metrics_api
from tickets import api

urlpatterns = [
    path("tickets/", api.TicketListApi.as_view(), name="api-ticket-list"),
    path("tickets/<int:number>/", api.TicketDetailApi.as_view(), name="api-ticket-detail"),
    path(
        "tickets/<int:number>/remedies/",
        escalation_api.TicketRemediesApi.as_view(),
        name="api-ticket-remedies",
    ),
    path(
        "tickets/<int:number>/allowance/",
        escalation_api.TicketAllowanceApi.as_view(),
        name="api-ticket-allowance",
    ),
    path("approvals/", escalation_api.ApprovalListApi.as_view(), name="api-approvals"),
    path(
        "approvals/<int:pk>/decision/",
        escalation_api.ApprovalDecisionApi.as_view(),
        name="api-approval-decision",
    ),
    # The supervisor's figures and the escalation queue (escalation/metrics_api.py).
    path("escalations/", metrics_api.EscalationListApi.as_view(), name="api-escalations"),
    path(
        "metrics/escalation-rate/",
        metrics_api.EscalationRateApi.as_view(),
        name="api-metrics-escalation-rate",
    ),
    path("metrics/agents/", metrics_api.AgentMetricsApi.as_view(), name="api-metrics-agents"),
    path(
        "metrics/remedy-spend/",
        metrics_api.RemedySpendApi.as_view(),
        name="api-metrics-remedy-spend",
    ),
    path(
        "metrics/root-causes/",
        metrics_api.RootCausesApi.as_view(),
        name="api-metrics-root-causes",
    ),
]
