"""The merchant's settings area under /settings/: channels, groups, members, remedy limits,
reason codes, escalation, audit log."""

from __future__ import annotations

from django.urls import path

from channels_in import views_chat, views_phone, views_wechat
from channels_in import views_settings as channel_views
from escalation import policy_views
from escalation import settings_views as empowerment_views
from helpdesk import account_views, invitation_views, views_settings
from tickets import import_views, macro_views, reason_views, service_level_views, spam_views
from tickets import views_settings as group_views

app_name = "settings"

urlpatterns = [
    path("", views_settings.settings_home, name="home"),
    path("channels/", channel_views.channel_list, name="channels"),
    path("channels/new/", channel_views.channel_new, name="channel_new"),
    path("channels/new/api/", channel_views.api_channel_new, name="api_channel_new"),
    path("channels/new/wechat/", views_wechat.wechat_channel_new, name="wechat_channel_new"),
    path("channels/new/chat/", views_chat.chat_channel_new, name="chat_channel_new"),
    path("channels/new/phone/", views_phone.phone_channel_new, name="phone_channel_new"),
    path(
        "channels/<int:pk>/rotate-key/",
        views_chat.chat_channel_rotate,
        name="chat_channel_rotate",
    ),
    path("channels/attachment-limit/", channel_views.attachment_limit, name="attachment_limit"),
    path("channels/<int:pk>/", channel_views.channel_edit, name="channel"),
    path("channels/<int:pk>/test/", channel_views.channel_test, name="channel_test"),
    path(
        "channels/<int:pk>/wechat-test/",
        views_wechat.wechat_channel_test,
        name="wechat_channel_test",
    ),
    path("channels/<int:pk>/test-mail/", channel_views.channel_test_mail, name="channel_test_mail"),
    path("channels/<int:pk>/rotate-secret/", channel_views.channel_rotate, name="channel_rotate"),
    path(
        "channels/<int:pk>/new-forwarding-address/",
        channel_views.channel_new_forwarding_address,
        name="channel_new_forwarding_address",
    ),
    path("channels/<int:pk>/pause/", channel_views.channel_pause, name="channel_pause"),
    path("channels/<int:pk>/resume/", channel_views.channel_resume, name="channel_resume"),
    path(
        "channels/<int:pk>/password/<str:server>/clear/",
        channel_views.channel_clear_password,
        name="channel_clear_password",
    ),
    path("groups/", group_views.group_list, name="groups"),
    path("groups/new/", group_views.group_create, name="group_new"),
    path("groups/<int:pk>/", group_views.group_detail, name="group"),
    path("groups/<int:pk>/rename/", group_views.group_rename, name="group_rename"),
    path("groups/<int:pk>/default/", group_views.group_default, name="group_default"),
    path("groups/<int:pk>/members/", group_views.group_member_add, name="group_member_add"),
    path(
        "groups/<int:pk>/members/<int:user_id>/remove/",
        group_views.group_member_remove,
        name="group_member_remove",
    ),
    path(
        "groups/<int:pk>/members/<int:user_id>/capacity/",
        group_views.group_member_capacity,
        name="group_member_capacity",
    ),
    path("groups/<int:pk>/routing/", group_views.group_routing, name="group_routing"),
    path("groups/<int:pk>/hours/", group_views.group_hours, name="group_hours"),
    path("groups/<int:pk>/holidays/", group_views.group_holiday_add, name="group_holiday_add"),
    path(
        "groups/<int:pk>/holidays/<int:holiday_id>/remove/",
        group_views.group_holiday_remove,
        name="group_holiday_remove",
    ),
    path("members/", views_settings.member_list, name="members"),
    path("members/<int:pk>/role/", views_settings.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views_settings.member_remove, name="member_remove"),
    path("members/invite/", invitation_views.invite, name="invite"),
    path("invitations/<int:pk>/resend/", invitation_views.resend, name="invitation_resend"),
    path("invitations/<int:pk>/revoke/", invitation_views.revoke, name="invitation_revoke"),
    path("audit/", views_settings.audit_log, name="audit"),
    path("service-levels/", service_level_views.service_level_settings, name="service_levels"),
    path("empowerment/", empowerment_views.empowerment, name="empowerment"),
    path("empowerment/policy/", empowerment_views.empowerment_policy, name="empowerment_policy"),
    path(
        "empowerment/rotate-secret/",
        empowerment_views.empowerment_rotate,
        name="empowerment_rotate",
    ),
    path(
        "empowerment/limits/new/",
        empowerment_views.empowerment_limit_new,
        name="empowerment_limit_new",
    ),
    path(
        "empowerment/limits/<int:pk>/",
        empowerment_views.empowerment_limit,
        name="empowerment_limit",
    ),
    path(
        "empowerment/limits/<int:pk>/remove/",
        empowerment_views.empowerment_limit_remove,
        name="empowerment_limit_remove",
    ),
    path("reason-codes/", reason_views.reason_code_list, name="reason_codes"),
    path("reason-codes/<int:pk>/", reason_views.reason_code_edit, name="reason_code"),
    path("macros/", macro_views.macro_list, name="macros"),
    path("macros/<int:pk>/", macro_views.macro_edit, name="macro"),
    path("macros/<int:pk>/retire/", macro_views.macro_retire, name="macro_retire"),
    path("macros/<int:pk>/restore/", macro_views.macro_restore, name="macro_restore"),
    path("blocked/", spam_views.block_list, name="blocks"),
    path("blocked/<int:pk>/lift/", spam_views.block_lift, name="block_lift"),
    path("escalation/", policy_views.escalation_settings, name="escalation"),
    path("imports/", import_views.import_list, name="imports"),
    path("imports/<int:pk>/", import_views.import_detail, name="import"),
    path("imports/<int:pk>/progress/", import_views.import_progress, name="import_progress"),
    path("imports/<int:pk>/errors.csv", import_views.import_errors, name="import_errors"),
    path("account/", account_views.account_settings, name="account"),
    path("account/logo/", account_views.account_logo, name="account_logo"),
    path("account/export/", account_views.export_list, name="exports"),
    path("account/export/<int:pk>/", account_views.export_download, name="export_download"),
    path("account/delete/", account_views.deletion_page, name="deletion"),
    path("account/delete/cancel/", account_views.deletion_cancel, name="deletion_cancel"),
]
