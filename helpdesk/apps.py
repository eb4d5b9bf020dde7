from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class PlatformAdminConfig(AdminConfig):
    """Django's admin with our site as ``admin.site``: for platform operators only."""

    default_site = "helpdesk.admin_base.PlatformAdminSite"


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Platform"

    def ready(self) -> None:
        from helpdesk import rls

        post_migrate.connect(rls.enforce_row_level_security, dispatch_uid="helpdesk-rls")
        # Webhook subscriptions hear of tickets, messages, remedies and escalations (issue 24).
        from helpdesk import webhook_events

        webhook_events.connect()
