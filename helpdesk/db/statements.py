"""Several writes sent as one statement: data-modifying CTEs built from Django's own SQL.

A hot path that writes a few rows which depend on each other (a ticket, its first message, its
audit rows) pays one round trip per row with ``Model.save``. ``Writes`` collects the INSERTs and
UPDATEs Django would send, names each, and sends them as one ``WITH ... SELECT`` statement; a
later write refers to an earlier one's returned columns with ``Writes.ref`` (``ticket_id =
(SELECT id FROM new_ticket)``). PostgreSQL runs every part of such a statement to the end, in one
snapshot, so the parts must not read each other's rows except through ``RETURNING``.

The SQL is Django's (field preparation, ``auto_now_add``, JSON encoding), so a model's new field
needs no change here. Models are written without ``save()``: callers set ``tenant_id``
themselves, as ``bulk_create`` callers do, and the statement still carries the tenant for
row-level security (helpdesk.db.base).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet
from django.db.models.constants import OnConflict
from django.db.models.expressions import RawSQL
from django.db.models.sql.subqueries import InsertQuery, UpdateQuery


class Writes:
    """Named INSERTs and UPDATEs, sent together by ``run``."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, list[Any]]] = []

    @staticmethod
    def ref(sql: str, params: Sequence[Any] = ()) -> RawSQL:
        """A value computed in the statement, e.g. ``Writes.ref("(SELECT id FROM new_ticket)")``."""
        # Callers pass SQL they wrote, never input: values travel as parameters.
        return RawSQL(sql, list(params))  # noqa: S611

    def raw(self, name: str, sql: str, params: Sequence[Any] = ()) -> None:
        """A hand-written part (e.g. an ``UPDATE ... RETURNING`` of a counter)."""
        self.parts.append((name, sql, list(params)))

    def insert(
        self,
        name: str,
        objs: Sequence[Model],
        *,
        returning: Sequence[str] = (),
        ignore_conflicts: bool = False,
    ) -> None:
        """Insert ``objs`` (unsaved instances of one model) as part ``name``; with
        ``ignore_conflicts`` a row that breaks a unique constraint is skipped (and returns
        nothing)."""
        model = type(objs[0])
        meta = model._meta
        fields = [
            field
            for field in meta.local_concrete_fields
            if not field.generated and not (field is meta.auto_field and objs[0].pk is None)
        ]
        query = InsertQuery(model, on_conflict=OnConflict.IGNORE if ignore_conflicts else None)
        query.insert_values(fields, objs, raw=False)
        compiler = query.get_compiler(connection=connection)
        # Django returns columns only for one row; the CTE returns them for every row.
        [(sql, params)] = compiler.as_sql()
        if returning:
            sql += " RETURNING " + ", ".join(connection.ops.quote_name(n) for n in returning)
        self.parts.append((name, sql, list(params)))

    def update(self, name: str, queryset: QuerySet, values: dict[str, Any]) -> None:
        """``queryset.update(**values)`` as part ``name`` (a plain filter, no joins)."""
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(values)
        sql, params = query.get_compiler(connection=connection).as_sql()
        self.parts.append((name, sql, list(params)))

    def statement(self, final: str, params: Sequence[Any] = ()) -> tuple[str, list[Any]]:
        """The whole statement: every part, then ``final`` (a SELECT over the parts)."""
        ctes = ", ".join(f"{name} AS ({sql})" for name, sql, _ in self.parts)
        all_params = [p for _, _, part_params in self.parts for p in part_params]
        return f"WITH {ctes} {final}", [*all_params, *params]

    def run(self, final: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Send the writes as one statement; the first row ``final`` selects."""
        if connection.vendor != "postgresql":
            return self._run_in_turn(final, params)
        sql, all_params = self.statement(final, params)
        with connection.cursor() as cursor:
            cursor.execute(sql, all_params)
            return cursor.fetchone()

    def _run_in_turn(self, final: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """SQLite (``make run``) has no data-modifying CTEs: each part runs on its own, in
        order, and what a part returns is kept in a temporary table of its name, so the later
        parts' references and ``final`` read it as they would the CTE."""
        made: list[str] = []
        with connection.cursor() as cursor:
            try:
                for name, sql, part_params in self.parts:
                    cursor.execute(sql, part_params)
                    if " RETURNING " not in sql:
                        continue
                    columns = [column[0] for column in cursor.description]
                    rows = cursor.fetchall()
                    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
                    cursor.execute(f"CREATE TEMP TABLE {name} ({quoted})")
                    made.append(name)
                    marks = ", ".join(["%s"] * len(columns))
                    for row in rows:
                        cursor.execute(f"INSERT INTO {name} VALUES ({marks})", list(row))
                cursor.execute(final, list(params))
                return cursor.fetchone()
            finally:
                for name in made:
                    cursor.execute(f"DROP TABLE temp.{name}")
