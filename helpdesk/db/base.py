"""PostgreSQL backend that keeps ``app.tenant_id`` in step with the active tenant.

Before every statement the setting is compared with the active tenant
(``tenancy.rls_setting()``) and set when it differs, so a reused connection can never carry one
request's tenant into the next:

- inside a transaction it is set with ``set_config(..., true)``: scoped to that transaction, so
  whatever ends it (commit, rollback, a COMMIT that PostgreSQL turns into a rollback because the
  transaction had failed) also ends the setting;
- in autocommit mode it is set for the session, where nothing can undo it.

Two caches mirror the server: the session value, and the transaction-local value (forgotten
whenever a transaction or savepoint ends, since either may have discarded it).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base as postgresql

_UNKNOWN = object()
_TRANSACTION_CONTROL = ("ROLLBACK", "RELEASE", "SAVEPOINT", "COMMIT")


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rls_session: object = _UNKNOWN
        self._rls_local: object = _UNKNOWN
        self.execute_wrappers.append(self._sync_tenant)

    def init_connection_state(self) -> None:
        self._rls_session = self._rls_local = _UNKNOWN
        super().init_connection_state()

    def _commit(self) -> None:
        self._rls_local = _UNKNOWN
        super()._commit()

    def _rollback(self) -> None:
        self._rls_local = _UNKNOWN
        super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        self._rls_local = _UNKNOWN

    def _sync_tenant(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        from helpdesk.tenancy import rls_setting  # tenancy defines models: import late

        wanted = rls_setting()
        if not str(sql).lstrip().upper().startswith(_TRANSACTION_CONTROL):
            in_transaction = not self.get_autocommit()
            if in_transaction:
                # Unknown at the start of each transaction and after a savepoint rollback:
                # then it is set once more rather than trusted.
                if self._rls_local != wanted:
                    self._set_tenant(wanted, local=True)
                    self._rls_local = wanted
            elif self._rls_session != wanted:
                self._set_tenant(wanted, local=False)
                self._rls_session = wanted
        return execute(sql, params, many, context)

    def _set_tenant(self, value: str, *, local: bool) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.tenant_id', %s, %s)", [value, local])
