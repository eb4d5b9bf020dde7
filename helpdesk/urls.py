from __future__ import annotations

from allauth.account import views as account_views
from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from escalation import price_drop_views
from helpdesk import account_views as merchant_account_views
from helpdesk import (
    api_docs,
    api_key_views,
    dev_outbox,
    invitation_views,
    onboarding_views,
    profile_views,
    signup_views,
    views,
    webhook_subscription_views,
    webhook_views,
)

# The admin signs in through allauth too, so its rate limits and TOTP cannot be bypassed there.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", account_views.LogoutView.as_view(), name="logout"),
    path("signup/", signup_views.signup, name="signup"),
    path("signup/resend/", signup_views.resend_verification, name="resend_verification"),
    path("invitations/<str:token>/", invitation_views.accept, name="invitation"),
    path("onboarding/", onboarding_views.checklist, name="onboarding"),
    path("onboarding/<slug:step>/skip/", onboarding_views.skip, name="onboarding_skip"),
    path("onboarding/reminder/", onboarding_views.dismiss, name="onboarding_dismiss"),
    path("accounts/", include("allauth.urls")),
    path("settings/api-keys/", api_key_views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:pk>/revoke/", api_key_views.revoke, name="api_key_revoke"),
    path("settings/webhooks/", webhook_views.webhook_list, name="webhooks"),
    path("settings/webhooks/<int:pk>/", webhook_views.webhook_detail, name="webhook"),
    path(
        "settings/webhook-subscriptions/",
        webhook_subscription_views.subscription_list,
        name="webhook_subscriptions",
    ),
    path(
        "settings/webhook-subscriptions/<int:pk>/",
        webhook_subscription_views.subscription_detail,
        name="webhook_subscription",
    ),
    path(
        "settings/webhook-subscriptions/order-feed/rotate/",
        webhook_subscription_views.order_feed_rotate,
        name="order_feed_rotate",
    ),
    path(
        "settings/webhook-subscriptions/order-events/<int:pk>/retry/",
        webhook_subscription_views.order_event_retry,
        name="order_event_retry",
    ),
    path("switch-tenant/", views.switch_tenant, name="switch_tenant"),
    path("logo/<slug:slug>/", merchant_account_views.logo_file, name="tenant_logo"),
    path("profile/", profile_views.my_profile, name="profile"),
    path("tickets/", include("tickets.urls")),
    path("tickets/", include("escalation.urls")),
    path("inbound/", include("channels_in.urls")),
    path("supervisor/", include("escalation.supervisor_urls")),
    path("escalation/price-drops/", price_drop_views.price_drop_list, name="price_drops"),
    path("escalation/price-drops/<int:pk>/", price_drop_views.price_drop_detail, name="price_drop"),
    path("settings/", include("helpdesk.settings_urls")),
    path("api/v1/", include("tickets.api_urls")),
    path("api/schema/", api_docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.docs, name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # Development only: the view answers 404 unless DEBUG is on (checked per request).
    path("dev/outbox/", dev_outbox.outbox, name="dev_outbox"),
]
