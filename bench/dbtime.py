"""Time spent waiting on the database, for each side of bench/peer.py.

Imported by both sides (the project's ``bench/peer.py`` and the peer's ``runner.py``, each in its
own virtualenv), so it needs Django alone. A ``DatabaseClock`` wraps every statement a
connection executes (``connection.execute_wrapper``) and every COMMIT it sends, and adds up the
wall time from sending each to its answer: what the database and the round trip cost, apart
from the Python around them. With autocommit (the peer's saves) PostgreSQL commits inside the
statement, so its commits are counted in its statements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class DatabaseClock:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.statements = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.statements += 1

    @contextmanager
    def timing(self, connection: Any) -> Iterator[DatabaseClock]:
        """Count ``connection``'s statements and commits while the block runs."""
        commit = connection._commit

        def timed_commit() -> Any:
            started = time.perf_counter()
            try:
                return commit()
            finally:
                self.seconds += time.perf_counter() - started
                self.statements += 1

        connection._commit = timed_commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection._commit  # the class's method again
