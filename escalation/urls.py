from __future__ import annotations

from django.urls import path

from escalation import views

app_name = "escalation"

# Mounted under tickets/: the actions of a ticket page's "Make it right" panel.
urlpatterns = [
    path("<int:number>/remedies/", views.grant, name="grant"),
    path("<int:number>/remedies/<int:pk>/retry/", views.retry, name="retry"),
    path("<int:number>/remedies/<int:pk>/executed/", views.mark_executed, name="mark_executed"),
]
