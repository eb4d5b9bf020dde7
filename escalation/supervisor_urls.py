from __future__ import annotations

from django.urls import path

from escalation import dashboard_views

app_name = "supervisor"

# Mounted at /supervisor/: what supervisors watch (escalations, rates, spend, root causes).
urlpatterns = [
    path("", dashboard_views.dashboard, name="dashboard"),
]
