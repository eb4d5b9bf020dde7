"""The database's walls around each merchant's rows (PostgreSQL only), derived from the models.

Applied after every ``migrate`` (post_migrate), by the owner role, so a new model or foreign key
cannot be forgotten. Every statement is idempotent.

- Row-level security on every tenant-owned table: ENABLE and FORCE (FORCE binds the table's
  owner too) and a policy comparing ``tenant_id`` with ``app.tenant_id``; append-only tables
  (the audit log) get SELECT and INSERT policies, and a DELETE policy for the owner role alone,
  which deletes a merchant's rows when the merchant is deleted.
- Same-tenant references: PostgreSQL checks foreign keys without row-level security, so a plain
  foreign key lets an Acme message point at a Globex ticket. Every foreign key from a
  tenant-owned model to another one also gets a composite key
  ``(tenant_id, ticket_id) REFERENCES tickets_ticket (tenant_id, id)`` (MATCH SIMPLE, so an
  empty reference passes; deferred like Django's own), on a UNIQUE (tenant_id, id).
- The app role's privileges: rows only (SELECT, INSERT, UPDATE, DELETE; SELECT and INSERT on
  append-only tables; SELECT on django_migrations), sequences to draw ids from, nothing else.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connections, models

from helpdesk.tenancy import TenantOwned

logger = logging.getLogger(__name__)

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
        f'DROP POLICY IF EXISTS tenant_purge ON "{table}"',
    ]
    if append_only:
        statements += [
            f'CREATE POLICY tenant_read ON "{table}" FOR SELECT USING ({TENANT_MATCHES})',
            f'CREATE POLICY tenant_append ON "{table}" FOR INSERT WITH CHECK ({TENANT_MATCHES})',
            # Only the role that migrates (the owner) may delete, one merchant at a time, when
            # the merchant itself is deleted (helpdesk.deletion); the app role has no DELETE.
            f'CREATE POLICY tenant_purge ON "{table}" FOR DELETE TO CURRENT_USER '
            f"USING ({TENANT_MATCHES})",
        ]
    else:
        statements.append(
            f'CREATE POLICY tenant_isolation ON "{table}" '
            f"USING ({TENANT_MATCHES}) WITH CHECK ({TENANT_MATCHES})"
        )
    return statements


@dataclass(frozen=True)
class SameTenantReference:
    """A foreign key between two tenant-owned tables, and the composite key that guards it."""

    table: str
    column: str
    referenced_table: str
    referenced_column: str

    @property
    def constraint(self) -> str:
        return constraint_name(self.table, self.column, "same_tenant")

    @property
    def referenced_unique(self) -> str:
        return constraint_name(self.referenced_table, self.referenced_column, "tenant_key")


def constraint_name(table: str, column: str, suffix: str) -> str:
    """``<table>_<column>_<suffix>``, shortened with a hash to PostgreSQL's 63 characters."""
    name = f"{table}_{column}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 62 - len(suffix) - 9]}_{digest}_{suffix}"


def same_tenant_references() -> list[SameTenantReference]:
    """Every foreign key (and one-to-one) from a tenant-owned model to another one."""
    references = []
    for model in apps.get_models():
        if not issubclass(model, TenantOwned) or model._meta.proxy:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and issubclass(
                field.related_model, TenantOwned
            ):
                references.append(
                    SameTenantReference(
                        table=model._meta.db_table,
                        column=field.column,
                        referenced_table=field.related_model._meta.db_table,
                        referenced_column=field.target_field.column,
                    )
                )
    return references


def reference_statements(reference: SameTenantReference, existing: set[str]) -> list[str]:
    statements = []
    if reference.referenced_unique not in existing:
        existing.add(reference.referenced_unique)
        statements.append(
            f'ALTER TABLE "{reference.referenced_table}" ADD CONSTRAINT '
            f'"{reference.referenced_unique}" UNIQUE (tenant_id, "{reference.referenced_column}")'
        )
    if reference.constraint not in existing:
        statements.append(
            f'ALTER TABLE "{reference.table}" ADD CONSTRAINT "{reference.constraint}" '
            f'FOREIGN KEY (tenant_id, "{reference.column}") '
            f'REFERENCES "{reference.referenced_table}" (tenant_id, "{reference.referenced_column}") '
            "MATCH SIMPLE DEFERRABLE INITIALLY DEFERRED"
        )
    return statements


def enforce_same_tenant_references(cursor: Any, tables: set[str]) -> None:
    cursor.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace"
    )
    constraints = cursor.fetchall()
    existing = {name for _, name in constraints}
    wanted = [r for r in same_tenant_references() if {r.table, r.referenced_table} <= tables]
    for reference in wanted:
        for statement in reference_statements(reference, existing):
            cursor.execute(statement)
    # A foreign key that was removed or now points at a platform table loses its guard.
    kept = {reference.constraint for reference in wanted}
    for table, name in constraints:
        if name.endswith("_same_tenant") and name not in kept:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"')


def app_privilege_statements(app_role: str, schema: str) -> list[str]:
    role, schema = f'"{app_role}"', f'"{schema}"'
    statements = [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # Tables a later migration creates are the app's to use at once (before this runs again).
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {role}",
    ]
    statements += [
        f'REVOKE UPDATE, DELETE ON "{table}" FROM {role}'
        for table, append_only in tenant_owned_tables()
        if append_only
    ]
    return statements


def grant_app_privileges(connection: Any, cursor: Any) -> None:
    app_role = getattr(connection, "app_role", None)
    if app_role is None:
        logger.warning(
            "migrate ran as the app role itself (%s): set DATABASE_MIGRATE_URL to the owner "
            "role so the app role can only read and write rows",
            connection.settings_dict["USER"],
        )
        return
    cursor.execute("SELECT current_schema()")
    schema = cursor.fetchone()[0]
    for statement in app_privilege_statements(app_role, schema):
        cursor.execute(statement)


def enforce_row_level_security(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: row-level security, same-tenant references and the app role's privileges.

    Django sends post_migrate once per app; the walls span every app, so they are built once,
    at the signal for this (the helpdesk) app.
    """
    app_config = kwargs.get("app_config")
    if app_config is not None and app_config.label != "helpdesk":
        return
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for table, append_only in tenant_owned_tables():
            if table in existing:
                for statement in policy_statements(table, append_only):
                    cursor.execute(statement)
        enforce_same_tenant_references(cursor, existing)
        grant_app_privileges(connection, cursor)
