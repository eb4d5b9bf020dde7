from __future__ import annotations

from django.urls import path

from channels_in import views

app_name = "channels_in"

urlpatterns = [
    path("<slug:tenant_slug>/email/<int:account_id>/", views.email_inbound, name="email"),
    path("log/", views.inbound_log, name="log"),
    path("log/<int:pk>/", views.inbound_detail, name="detail"),
    path("log/<int:pk>/retry/", views.inbound_retry, name="retry"),
    path("channels/<int:pk>/resume/", views.channel_resume, name="resume"),
]
