"""PostgreSQL backend that keeps ``app.tenant_id`` in step with the active tenant.

Before every statement the setting is compared with the active tenant
(``tenancy.rls_setting()``) and set when it differs, so a reused connection can never carry one
request's tenant into the next:

- inside a transaction it is set with ``set_config(..., true)``: scoped to that transaction, so
  whatever ends it (commit, rollback, a COMMIT that PostgreSQL turns into a rollback because the
  transaction had failed) also ends the setting;
- in autocommit mode it is set for the session, where nothing can undo it.

Two caches mirror the server: the session value, and the transaction-local value. When a
transaction ends, whatever was set in it is gone and the setting is the session's again, so the
next transaction needs no ``set_config`` when the session already holds the tenant. After a
savepoint rollback the local value is unknown (the savepoint may have discarded it) and is set
once more rather than trusted.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base as postgresql

_UNKNOWN = object()
# The transaction-local value is the session's: nothing was set since the last transaction ended.
_SESSION = object()
_TRANSACTION_CONTROL = ("ROLLBACK", "RELEASE", "SAVEPOINT", "COMMIT")


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rls_session: object = _UNKNOWN
        self._rls_local: object = _SESSION
        self.execute_wrappers.append(self._sync_tenant)

    def init_connection_state(self) -> None:
        self._rls_session = _UNKNOWN
        self._rls_local = _SESSION
        super().init_connection_state()

    def _commit(self) -> None:
        self._rls_local = _SESSION
        super()._commit()

    def _rollback(self) -> None:
        self._rls_local = _SESSION
        super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        self._rls_local = _UNKNOWN

    def _sync_tenant(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        from helpdesk.tenancy import rls_setting  # tenancy defines models: import late

        if not str(sql).lstrip().upper().startswith(_TRANSACTION_CONTROL):
            wanted = rls_setting()
            if not self.get_autocommit():
                local = self._rls_session if self._rls_local is _SESSION else self._rls_local
                if local != wanted:
                    self._set_tenant(wanted, local=True)
            elif self._rls_session != wanted:
                self._set_tenant(wanted, local=False)
        return execute(sql, params, many, context)

    def _set_tenant(self, value: str, *, local: bool) -> None:
        """Set ``app.tenant_id`` through Django's cursor, so query logging and capture see it."""
        # The cache is updated first: this very statement passes through ``_sync_tenant``,
        # which must find the setting in step rather than set it again (endlessly).
        attribute = "_rls_local" if local else "_rls_session"
        previous = getattr(self, attribute)
        setattr(self, attribute, value)
        try:
            with self.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, %s)", [value, local])
        except BaseException:
            setattr(self, attribute, previous)
            raise
