from __future__ import annotations

from django.urls import path

from tickets import api

urlpatterns = [
    path("tickets/", api.TicketListApi.as_view(), name="api-ticket-list"),
    path("tickets/<int:number>/", api.TicketDetailApi.as_view(), name="api-ticket-detail"),
]
