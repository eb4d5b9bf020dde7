from __future__ import annotations

from django.contrib import admin

from helpdesk.admin_base import is_platform_operator
from helpdesk.models import ApiKey, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class PlatformAdmin(admin.ModelAdmin):
    """Tables that span merchants: the platform operator's (superusers) alone, whatever
    model permissions a merchant's staff account was given."""

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return is_platform_operator(request.user)

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return is_platform_operator(request.user)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return is_platform_operator(request.user)

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return is_platform_operator(request.user)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return is_platform_operator(request.user)


@admin.register(Tenant)
class TenantAdmin(PlatformAdmin):
    list_display = ["name", "slug", "default_currency", "locale", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["last_ticket_number"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(PlatformAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(PlatformAdmin):
    list_display = [
        "name",
        "tenant",
        "prefix",
        "acting_user",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["tenant"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # keys are issued with `manage.py issue_api_key`, which shows the token once
