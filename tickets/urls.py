from __future__ import annotations

from django.urls import path

from tickets import (
    assign_views,
    macro_views,
    merge_views,
    outbound_views,
    presence_views,
    reason_views,
    spam_views,
    tag_views,
    views,
    views_queues,
)

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("queues/", views_queues.queue_page, name="queues"),
    path("bulk/", assign_views.bulk, name="bulk"),
    path("counts/", views.inbox_counts, name="counts"),
    path("new/", outbound_views.new_conversation, name="new"),
    path("<int:number>/", views.ticket_detail, name="detail"),
    path("<int:number>/status/", views.ticket_status, name="status"),
    path("<int:number>/priority/", views.ticket_priority, name="priority"),
    path("<int:number>/reason/", reason_views.ticket_reason, name="reason"),
    path("<int:number>/tags/", tag_views.ticket_tags, name="tags"),
    path("<int:number>/macros/<int:pk>/", macro_views.ticket_macro, name="macro"),
    path("<int:number>/spam/", spam_views.ticket_spam, name="spam"),
    path("<int:number>/not-spam/", spam_views.ticket_not_spam, name="not_spam"),
    path("<int:number>/block/", spam_views.ticket_block, name="block"),
    path("<int:number>/blocks/<int:pk>/lift/", spam_views.ticket_unblock, name="unblock"),
    path("<int:number>/take/", assign_views.ticket_take, name="take"),
    path("<int:number>/assign/", assign_views.ticket_assign, name="assign"),
    path("<int:number>/group/", assign_views.ticket_group, name="group"),
    path("<int:number>/note/", views.ticket_note, name="note"),
    path("<int:number>/order/link/", merge_views.order_link, name="order_link"),
    path("<int:number>/order/unlink/", merge_views.order_unlink, name="order_unlink"),
    path("<int:number>/merge/", merge_views.ticket_merge, name="merge"),
    path("<int:number>/reply/", views.ticket_reply, name="reply"),
    path("<int:number>/messages/<int:pk>/resend/", views.message_resend, name="resend"),
    path("<int:number>/messages/<int:pk>/send-now/", views.message_send_now, name="send_now"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path("customers/<int:pk>/", views.customer_detail, name="customer"),
    path("customers/<int:pk>/merge/", merge_views.customer_merge, name="customer_merge"),
    path("presence/", presence_views.set_my_presence, name="presence"),
]
