"""The project as `make run` runs it, from a test: `python manage.py ...` in a subprocess on a
SQLite file in a temporary folder, with DEBUG on, so the in-memory channel layer and eager Celery
apply, and without the suite's PostgreSQL, Redis and Celery settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_run_manage(tmp_path: Path) -> Callable[..., str]:
    """``manage(*args)``: runs ``manage.py`` with ``args`` as `make run` would, on
    ``tmp_path/db.sqlite3`` (media in ``tmp_path/media``); its stdout, or CalledProcessError."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "DJANGO_", "REDIS_", "CELERY_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "DJANGO_DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp_path / "media"),
        }
    )

    def manage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=True,
        ).stdout

    return manage
