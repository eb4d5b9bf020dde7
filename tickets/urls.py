from __future__ import annotations

from django.urls import path

from tickets import views

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("<int:number>/", views.ticket_detail, name="detail"),
    path("<int:number>/status/", views.ticket_status, name="status"),
    path("<int:number>/note/", views.ticket_note, name="note"),
    path("<int:number>/reply/", views.ticket_reply, name="reply"),
    path("<int:number>/messages/<int:pk>/resend/", views.message_resend, name="resend"),
    path("<int:number>/messages/<int:pk>/send-now/", views.message_send_now, name="send_now"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("customers/<int:pk>/", views.customer_detail, name="customer"),
]
