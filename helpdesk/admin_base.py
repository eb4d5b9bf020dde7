"""The Django admin is the platform operators' tool, and theirs alone.

Django's model permissions are global: a merchant's staff account given "change mailbox" could
change it in every merchant it switches to, and Django's User and Group pages would let an
owner at one merchant list everyone's accounts and reset another merchant's owner's password.
So the whole site answers only active superusers (``PlatformAdminSite``, installed as the
default site by ``helpdesk.apps.PlatformAdminConfig``); merchants manage their own people,
channels and groups in their settings pages, where their role in that merchant is checked.

Tenant-owned models are shown for the merchant the operator acts for, never a mix, and acting
for a merchant is support access the merchant's owners can read in their audit log.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from helpdesk.tenancy import current_tenant


def is_platform_operator(user: Any) -> bool:
    """An active superuser: the only kind of account the admin answers."""
    return bool(user.is_active and user.is_staff and user.is_superuser)


class PlatformAdminSite(admin.AdminSite):
    """The admin, for platform operators only: everyone else gets the login page or a 403,
    whatever staff flag or model permissions their account holds."""

    def has_permission(self, request: HttpRequest) -> bool:
        return is_platform_operator(request.user)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        tenant = current_tenant()
        if tenant is not None and self.has_permission(request):
            from helpdesk.permissions import acting_agent_for, note_support_access

            # An operator who lands in a merchant without switching is on support access too.
            note_support_access(request, acting_agent_for(request.user, tenant))
        return super().each_context(request)


class TenantScopedAdmin(admin.ModelAdmin):
    exclude = ("tenant",)

    # The site already refuses everyone but operators; these hold if a model is ever
    # registered on another site.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_operator(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_platform_operator(request.user) and super().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_platform_operator(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_platform_operator(request.user) and super().has_delete_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        if current_tenant() is None:
            messages.warning(request, "Choose a merchant to act for before browsing its data.")
            return self.model.all_tenants.none()
        return super().get_queryset(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return (
            is_platform_operator(request.user)
            and current_tenant() is not None
            and super().has_add_permission(request)
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # Choices come from the default (tenant-scoped) manager of the related model.
        related = db_field.remote_field.model
        if current_tenant() is None and hasattr(related, "all_tenants"):
            kwargs["queryset"] = related.all_tenants.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
