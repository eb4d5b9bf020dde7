from __future__ import annotations

from django.urls import path

from channels_in import views

app_name = "channels_in"

urlpatterns = [
    path("log/", views.inbound_log, name="log"),
    path("log/<int:pk>/", views.inbound_detail, name="detail"),
    path("log/<int:pk>/retry/", views.inbound_retry, name="retry"),
    path("log/<int:pk>/discard/", views.inbound_discard, name="discard"),
    path("log/<int:pk>/file/", views.inbound_file, name="file"),
    path("channels/<int:pk>/resume/", views.channel_resume, name="resume"),
    # Every channel's webhook. Email's URL (/inbound/<merchant>/email/<id>/) is one instance.
    path("<slug:tenant_slug>/<slug:kind>/<int:account_id>/", views.inbound, name="inbound"),
]
