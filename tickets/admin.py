from __future__ import annotations

from django.contrib import admin

from helpdesk.admin_base import TenantScopedAdmin
from tickets.models import (
    AuditEvent,
    Customer,
    CustomerIdentity,
    Group,
    Message,
    Order,
    OrderLine,
    Tag,
    Ticket,
)


class IdentityInline(admin.TabularInline):
    model = CustomerIdentity
    exclude = ("tenant",)
    extra = 0


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name", "identities__value"]
    inlines = [IdentityInline]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    exclude = ("tenant",)
    extra = 0


@admin.register(Order)
class OrderAdmin(TenantScopedAdmin):
    list_display = ["number", "customer", "status", "total_amount", "currency", "placed_at"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "tracking_number"]
    inlines = [OrderLineInline]
    raw_id_fields = ["customer"]


@admin.register(Ticket)
class TicketAdmin(TenantScopedAdmin):
    list_display = ["number", "subject", "status", "priority", "channel", "customer", "updated_at"]
    list_filter = ["status", "priority", "channel"]
    search_fields = ["subject", "=number"]
    raw_id_fields = ["customer", "order"]
    # Assignment and status go through the services (membership checks, audit), not the admin.
    readonly_fields = ["number", "status", "assignee", "created_at", "updated_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # tickets are opened through services, which number and audit them


@admin.register(Message)
class MessageAdmin(TenantScopedAdmin):
    list_display = ["ticket", "direction", "channel", "delivery_state", "created_at"]
    list_filter = ["direction", "channel", "delivery_state"]
    raw_id_fields = ["ticket", "author_user", "author_customer"]


@admin.register(Group)
class GroupAdmin(TenantScopedAdmin):
    list_display = ["name"]
    exclude = ("tenant", "members")


@admin.register(Tag)
class TagAdmin(TenantScopedAdmin):
    list_display = ["name"]


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
