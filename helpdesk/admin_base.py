"""Admin for tenant-owned models: the operator sees the tenant they act for, never a mix."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from helpdesk.tenancy import current_tenant


class TenantScopedAdmin(admin.ModelAdmin):
    exclude = ("tenant",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        if current_tenant() is None:
            messages.warning(request, "Choose a merchant to act for before browsing its data.")
            return self.model.all_tenants.none()
        return super().get_queryset(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return current_tenant() is not None and super().has_add_permission(request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # Choices come from the default (tenant-scoped) manager of the related model.
        related = db_field.remote_field.model
        if current_tenant() is None and hasattr(related, "all_tenants"):
            kwargs["queryset"] = related.all_tenants.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
