"""Fixtures of the channel tests that need more than one module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker

from helpdesk.celery import app


@pytest.fixture
def real_worker() -> Iterator[None]:
    """A real Celery worker in a thread, on the Redis broker, for the length of a test."""
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            yield
    finally:
        app.conf.task_always_eager = True
