from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Platform"

    def ready(self) -> None:
        from helpdesk import rls

        post_migrate.connect(rls.enforce_row_level_security, dispatch_uid="helpdesk-rls")
