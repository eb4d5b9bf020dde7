from __future__ import annotations

from django.urls import path

from escalation import approval_views, escalation_views, views

app_name = "escalation"

# Mounted under tickets/: the actions of a ticket page's "Make it right" panel, and the
# supervisor's approvals page (/tickets/approvals/ until helpdesk/urls.py mounts escalation/).
urlpatterns = [
    path("approvals/", approval_views.approval_list, name="approvals"),
    path("approvals/<int:pk>/decision/", approval_views.decide, name="decide"),
    path("<int:number>/remedies/", views.grant, name="grant"),
    path("<int:number>/remedies/<int:pk>/retry/", views.retry, name="retry"),
    path("<int:number>/remedies/<int:pk>/executed/", views.mark_executed, name="mark_executed"),
    path("<int:number>/escalate/", escalation_views.escalate, name="escalate"),
    path("escalations/<int:pk>/resolve/", escalation_views.resolve, name="resolve_escalation"),
]
