from __future__ import annotations

from django.urls import path

from channels_in import chat_endpoints, views, views_phone

app_name = "channels_in"

urlpatterns = [
    path("log/", views.inbound_log, name="log"),
    path("log/<int:pk>/", views.inbound_detail, name="detail"),
    path("log/<int:pk>/retry/", views.inbound_retry, name="retry"),
    path("log/<int:pk>/discard/", views.inbound_discard, name="discard"),
    path("log/<int:pk>/file/", views.inbound_file, name="file"),
    path("channels/<int:pk>/resume/", views.channel_resume, name="resume"),
    # The live chat widget on merchants' stores (channels_in.chat_endpoints).
    path("chat/<str:public_key>/config/", chat_endpoints.widget_config, name="chat_config"),
    path("chat/<str:public_key>/upload/", chat_endpoints.visitor_upload, name="chat_upload"),
    # The ticket page's call log and call-backs (channels_in.phone_calls).
    path("phone/tickets/<int:number>/calls/", views_phone.log_call, name="log_call"),
    path(
        "phone/tickets/<int:number>/call-backs/",
        views_phone.schedule_call_back,
        name="schedule_call_back",
    ),
    path(
        "phone/call-backs/<int:pk>/cancel/", views_phone.cancel_call_back, name="cancel_call_back"
    ),
    # Every channel's webhook. Email's URL (/inbound/<merchant>/email/<id>/) is one instance.
    path("<slug:tenant_slug>/<slug:kind>/<int:account_id>/", views.inbound, name="inbound"),
]
