"""The two database roles: the owner that migrates, the app role that only reads and writes rows.

``DATABASE_URL`` names the app role: it may SELECT, INSERT, UPDATE and DELETE rows (on the audit
log only SELECT and INSERT), and cannot change a table, a policy or row-level security.
``DATABASE_MIGRATE_URL`` names the owner role: ``manage.py migrate`` (and the test suite's
set-up) logs in with it, so tables, policies and grants are the owner's. Both name the same
database; the owner's may name another host or port (PostgreSQL itself rather than PgBouncer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from helpdesk.env import parse_database_url

# What the owner's URL replaces in the connection's settings; the database NAME stays (in tests
# it is the test database's).
_LOGIN_KEYS = ("USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def owner_login() -> dict[str, Any] | None:
    """The owner role's login from ``DATABASE_MIGRATE_URL``, or None when it is not set."""
    url = getattr(settings, "DATABASE_MIGRATE_URL", "")
    if not url:
        return None
    owner = parse_database_url(url)
    if owner["ENGINE"] != "helpdesk.db":
        raise ImproperlyConfigured("DATABASE_MIGRATE_URL must be a postgres:// URL")
    return {key: owner[key] for key in _LOGIN_KEYS}


@contextlib.contextmanager
def connected_as_owner(connection: Any) -> Iterator[None]:
    """Run the block with ``connection`` logged in as the owner role; the app role after.

    Without ``DATABASE_MIGRATE_URL`` (SQLite, or one role for everything) nothing changes.
    """
    owner = owner_login()
    if (
        owner is None
        or connection.vendor != "postgresql"
        or getattr(connection, "app_role", None) is not None  # already the owner
    ):
        yield
        return
    settings_dict = connection.settings_dict
    app = {key: settings_dict[key] for key in _LOGIN_KEYS}
    connection.close()
    settings_dict.update(owner)
    connection.app_role = app["USER"]
    try:
        yield
    finally:
        connection.close()
        settings_dict.update(app)
        connection.app_role = None
