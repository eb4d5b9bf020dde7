"""PostgreSQL backend that gives every statement the active tenant, transaction-locally.

``app.tenant_id`` is only ever set with ``set_config(..., true)``: local to the transaction, so
whatever ends the transaction (commit, rollback, a COMMIT that PostgreSQL turns into a rollback)
also ends the setting. It is never set for the session, so neither a reused connection nor a
transaction-pooling PgBouncer can hand one client's tenant to another.

The setting travels in the same simple Query as the statement that needs it: psycopg2 sends
``SELECT set_config('app.tenant_id', '7', true); <statement>`` as one message, which PostgreSQL
runs in one transaction. So it costs no extra round trip, and

- inside a transaction, the first statement that needs the tenant carries it, and the
  transaction keeps it until it ends (or until the tenant changes, or a savepoint rollback may
  have discarded it: then the next statement carries it again);
- outside a transaction (autocommit) every statement run while a tenant is active carries it,
  and the implicit transaction PostgreSQL wraps around the pair ends with the statement. Each
  such statement is a transaction of its own: the equivalent of ``ATOMIC_REQUESTS`` for
  pooling, without pinning a server connection for a whole request.

With no tenant active, no setting is sent and the session's value is empty: no tenant-owned row
is visible. A server-side (named) cursor cannot take a prefix; it sets the tenant with a
statement of its own inside its transaction, and outside one Django reads in one go instead.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base as postgresql

# The value a transaction-local setting may hold after a savepoint rollback: set it again.
_UNKNOWN = object()
_TRANSACTION_CONTROL = ("ROLLBACK", "RELEASE", "SAVEPOINT", "COMMIT", "BEGIN")
_SET_TENANT = "SELECT set_config('app.tenant_id', %s, true); "
_SET_TENANT_NAMED = "SELECT set_config('app.tenant_id', %(helpdesk_tenant_id)s, true); "


class DatabaseWrapper(postgresql.DatabaseWrapper):
    # While logged in as the owner (helpdesk.db.roles.connected_as_owner): the app role, which
    # the owner grants row privileges to. None while logged in as the app role itself.
    app_role: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What app.tenant_id holds in the open transaction; "" also outside one (the session's
        # value, never set by us).
        self._tenant_in_transaction: object = ""
        self.execute_wrappers.append(self._with_tenant)

    def init_connection_state(self) -> None:
        self._tenant_in_transaction = ""
        super().init_connection_state()

    def _commit(self) -> None:
        self._tenant_in_transaction = ""
        super()._commit()

    def _rollback(self) -> None:
        self._tenant_in_transaction = ""
        super()._rollback()

    def forget_tenant_setting(self) -> None:
        """Someone set app.tenant_id by hand (a data migration walking every merchant): the
        next statement that needs the active tenant sets it again."""
        self._tenant_in_transaction = _UNKNOWN

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        self._tenant_in_transaction = _UNKNOWN

    def chunked_cursor(self) -> Any:
        # Outside a transaction Django would DECLARE a cursor WITH HOLD, which outlives its
        # transaction: it could not carry the tenant, and a transaction-pooling PgBouncer may
        # send the next FETCH to another server. Read the result in one go instead.
        if self.get_autocommit():
            return self.cursor()
        return super().chunked_cursor()

    def _with_tenant(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        from helpdesk.tenancy import rls_setting  # tenancy defines models: import late

        if str(sql).lstrip().upper().startswith(_TRANSACTION_CONTROL):
            return execute(sql, params, many, context)
        wanted = rls_setting()
        in_transaction = not self.get_autocommit()
        if in_transaction and self._tenant_in_transaction == wanted:
            return execute(sql, params, many, context)
        if not in_transaction and wanted == "":
            return execute(sql, params, many, context)
        if getattr(context["cursor"].cursor, "name", None):
            if not in_transaction:
                raise RuntimeError("A server-side cursor needs a transaction to carry the tenant")
            self._set_tenant_alone(wanted)
            return execute(sql, params, many, context)
        if in_transaction:
            self._tenant_in_transaction = wanted
        try:
            if many:
                param_sets = list(params)
                return execute(
                    _prefixed(sql, param_sets[0] if param_sets else ()),
                    [_with_tenant_param(one, wanted) for one in param_sets],
                    many,
                    context,
                )
            return execute(
                _prefixed(sql, params), _with_tenant_param(params, wanted), many, context
            )
        except BaseException:
            if in_transaction:
                self._tenant_in_transaction = _UNKNOWN
            raise

    def _set_tenant_alone(self, value: str) -> None:
        """Set the tenant with a statement of its own (named cursors cannot take a prefix)."""
        self._tenant_in_transaction = value
        try:
            with self.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [value])
        except BaseException:
            self._tenant_in_transaction = _UNKNOWN
            raise


def _prefixed(sql: str, params: Any) -> str:
    if params is None:
        # psycopg2 formats the statement now that it has a parameter: keep literal % literal.
        return _SET_TENANT + sql.replace("%", "%%")
    if isinstance(params, dict):
        return _SET_TENANT_NAMED + sql
    return _SET_TENANT + sql


def _with_tenant_param(params: Any, tenant_id: str) -> Any:
    if params is None:
        return [tenant_id]
    if isinstance(params, dict):
        return {**params, "helpdesk_tenant_id": tenant_id}
    return [tenant_id, *params]
