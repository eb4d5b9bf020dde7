from __future__ import annotations

from django.urls import path

from tickets import views

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("<int:number>/", views.ticket_detail, name="detail"),
    path("<int:number>/status/", views.ticket_status, name="status"),
    path("<int:number>/note/", views.ticket_note, name="note"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
]
