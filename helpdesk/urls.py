from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from helpdesk import dev_outbox, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch-tenant/", views.switch_tenant, name="switch_tenant"),
    path("tickets/", include("tickets.urls")),
    path("inbound/", include("channels_in.urls")),
    path("api/v1/", include("tickets.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # Development only: the view answers 404 unless DEBUG is on (checked per request).
    path("dev/outbox/", dev_outbox.outbox, name="dev_outbox"),
]
