"""PostgreSQL backend that keeps ``app.tenant_id`` in step with the active tenant.

Before every statement the connection's ``app.tenant_id`` is compared with the active tenant
(``tenancy.rls_setting()``) and set when it differs, so a reused connection can never carry one
request's tenant into the next. The last value sent is cached per connection and forgotten on any
rollback, because a rollback may undo a ``set_config`` made inside the transaction.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base as postgresql

_UNKNOWN = object()
_TRANSACTION_CONTROL = ("ROLLBACK", "RELEASE", "SAVEPOINT")


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rls_tenant: object = _UNKNOWN
        self.execute_wrappers.append(self._sync_tenant)

    def init_connection_state(self) -> None:
        self._rls_tenant = _UNKNOWN
        super().init_connection_state()

    def _rollback(self) -> None:
        self._rls_tenant = _UNKNOWN
        super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        self._rls_tenant = _UNKNOWN

    def _sync_tenant(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        from helpdesk.tenancy import rls_setting  # tenancy defines models: import late

        wanted = rls_setting()
        if wanted != self._rls_tenant and not str(sql).lstrip().upper().startswith(
            _TRANSACTION_CONTROL
        ):
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, false)", [wanted])
            self._rls_tenant = wanted
        return execute(sql, params, many, context)
