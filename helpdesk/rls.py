"""Row-level security on every tenant-owned table (PostgreSQL only).

Run after every ``migrate`` (post_migrate), so a new tenant-owned model cannot be forgotten:
ENABLE and FORCE row-level security (FORCE makes the policies bind the table owner too, which is
the role the app connects as) and one policy comparing ``tenant_id`` with ``app.tenant_id``.
The statements are idempotent.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connections

from helpdesk.tenancy import TenantOwned

TENANT_MATCHES = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint"


def tenant_owned_tables() -> list[tuple[str, bool]]:
    """(table, append_only) for every concrete tenant-owned model."""
    return [
        (model._meta.db_table, model.rls_append_only)
        for model in apps.get_models()
        if issubclass(model, TenantOwned) and not model._meta.proxy
    ]


def policy_statements(table: str, append_only: bool) -> list[str]:
    statements = [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"',
        f'DROP POLICY IF EXISTS tenant_read ON "{table}"',
        f'DROP POLICY IF EXISTS tenant_append ON "{table}"',
    ]
    if append_only:
        statements += [
            f'CREATE POLICY tenant_read ON "{table}" FOR SELECT USING ({TENANT_MATCHES})',
            f'CREATE POLICY tenant_append ON "{table}" FOR INSERT WITH CHECK ({TENANT_MATCHES})',
        ]
    else:
        statements.append(
            f'CREATE POLICY tenant_isolation ON "{table}" '
            f"USING ({TENANT_MATCHES}) WITH CHECK ({TENANT_MATCHES})"
        )
    return statements


def enforce_row_level_security(using: str = "default", **kwargs: Any) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for table, append_only in tenant_owned_tables():
            if table in existing:
                for statement in policy_statements(table, append_only):
                    cursor.execute(statement)
