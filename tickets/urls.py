from __future__ import annotations

from django.urls import path

from tickets import assign_views, presence_views, reason_views, views, views_queues

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("queues/", views_queues.queue_page, name="queues"),
    path("bulk/", assign_views.bulk, name="bulk"),
    path("<int:number>/", views.ticket_detail, name="detail"),
    path("<int:number>/status/", views.ticket_status, name="status"),
    path("<int:number>/priority/", views.ticket_priority, name="priority"),
    path("<int:number>/reason/", reason_views.ticket_reason, name="reason"),
    path("<int:number>/take/", assign_views.ticket_take, name="take"),
    path("<int:number>/assign/", assign_views.ticket_assign, name="assign"),
    path("<int:number>/group/", assign_views.ticket_group, name="group"),
    path("<int:number>/note/", views.ticket_note, name="note"),
    path("<int:number>/reply/", views.ticket_reply, name="reply"),
    path("<int:number>/messages/<int:pk>/resend/", views.message_resend, name="resend"),
    path("<int:number>/messages/<int:pk>/send-now/", views.message_send_now, name="send_now"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("customers/<int:pk>/", views.customer_detail, name="customer"),
    path("presence/", presence_views.set_my_presence, name="presence"),
]
