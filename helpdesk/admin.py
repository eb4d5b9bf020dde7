from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext_lazy as _

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


# --- people: one account per email ----------------------------------------------------------


def _refuse_taken_email(form: Any) -> str:
    """The form's email, refused when another account has it (in any case): one account per
    email across the platform (also a unique index on lower(email))."""
    email = (form.cleaned_data.get("email") or "").strip().lower()
    others = get_user_model().objects.filter(email__iexact=email)
    if form.instance.pk is not None:
        others = others.exclude(pk=form.instance.pk)
    if email and others.exists():
        raise forms.ValidationError(
            _("Another account already has this email; add a merchant to that account instead.")
        )
    return email


class PlatformUserChangeForm(UserChangeForm):
    clean_email = _refuse_taken_email


class PlatformUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        fields = ("username", "email")

    clean_email = _refuse_taken_email


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    form = PlatformUserChangeForm
    add_form = PlatformUserCreationForm
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "usable_password", "password1", "password2"),
            },
        ),
    )
