"""``manage.py migrate``, logged in as the owner role when ``DATABASE_MIGRATE_URL`` is set.

The app role (``DATABASE_URL``) may only read and write rows; tables, row-level security
policies, same-tenant foreign keys and the app role's grants are the owner's to change
(helpdesk.db.roles, helpdesk.rls).
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate
from django.db import connections

from helpdesk.db.roles import connected_as_owner


class Command(migrate.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        with connected_as_owner(connections[options["database"]]):
            super().handle(*args, **options)
