from __future__ import annotations

from django.urls import path, re_path

from escalation import api as escalation_api
from escalation import metrics_api
from helpdesk import api_webhooks
from helpdesk.errors import api_not_found
from tickets import (
    api,
    api_customers,
    api_escalations,
    api_order_feed,
    api_orders,
    api_workspace,
)

urlpatterns = [
    path("customers/", api_customers.CustomerListApi.as_view(), name="api-customer-list"),
    path(
        "customers/<int:pk>/", api_customers.CustomerDetailApi.as_view(), name="api-customer-detail"
    ),
    path(
        "customers/<int:pk>/identities/",
        api_customers.CustomerIdentitiesApi.as_view(),
        name="api-customer-identities",
    ),
    path(
        "customers/<int:pk>/merge/",
        api_workspace.CustomerMergeApi.as_view(),
        name="api-customer-merge",
    ),
    path("macros/", api_workspace.MacroListApi.as_view(), name="api-macro-list"),
    path(
        "tickets/<int:number>/macros/<int:pk>/render/",
        api_workspace.MacroRenderApi.as_view(),
        name="api-macro-render",
    ),
    path(
        "tickets/<int:number>/merge/",
        api_workspace.TicketMergeApi.as_view(),
        name="api-ticket-merge",
    ),
    path("orders/", api_orders.OrderListApi.as_view(), name="api-order-list"),
    path("orders/<str:number>/", api_orders.OrderDetailApi.as_view(), name="api-order-detail"),
    path("tickets/", api.TicketListApi.as_view(), name="api-ticket-list"),
    path("tickets/<int:number>/", api.TicketDetailApi.as_view(), name="api-ticket-detail"),
    path(
        "tickets/<int:number>/messages/",
        api.TicketMessagesApi.as_view(),
        name="api-ticket-messages",
    ),
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
        "tickets/<int:number>/escalations/",
        api_escalations.TicketEscalateApi.as_view(),
        name="api-ticket-escalate",
    ),
    path(
        "escalations/<int:pk>/resolve/",
        api_escalations.EscalationResolveApi.as_view(),
        name="api-escalation-resolve",
    ),
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
    # Webhook subscriptions (admin scope) and the shop's signed order events.
    path("webhooks/", api_webhooks.SubscriptionListApi.as_view(), name="api-webhook-subscriptions"),
    path(
        "webhooks/<int:pk>/",
        api_webhooks.SubscriptionDetailApi.as_view(),
        name="api-webhook-subscription",
    ),
    path(
        "webhooks/<int:pk>/deliveries/",
        api_webhooks.SubscriptionDeliveriesApi.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "webhook-deliveries/<int:pk>/resend/",
        api_webhooks.DeliveryResendApi.as_view(),
        name="api-webhook-resend",
    ),
    path(
        "shop/<slug:merchant>/orders/",
        api_order_feed.OrderFeedApi.as_view(),
        name="api-shop-order-events",
    ),
    # Anything else under /api/v1/ is the API's 404, in its error format.
    re_path(r"^.*$", api_not_found),
]
