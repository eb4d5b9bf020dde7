"""Browser tests share one rule: each starts on a fresh database connection.

A browser test's live server is torn down by ending the database backends its worker threads
opened (tests/browser/test_live_updates.py), and this thread's connection as the Playwright
event loop saw it can be among them: a later test would find it closed under it.
"""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _fresh_database_connection() -> None:
    connection.close()
