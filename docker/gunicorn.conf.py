"""gunicorn settings for the web service: uvicorn workers (ASGI: HTTP and WebSockets), sized
from the CPU count, with the timeouts that keep a slow client from holding one.

Used by the Dockerfile's command: ``gunicorn -c docker/gunicorn.conf.py helpdesk.asgi:application``.
Body size and body timeouts are enforced in the app (helpdesk/asgi_limits.py); header timeouts
belong to the reverse proxy (README, "Behind a reverse proxy"): uvicorn has none.
"""

from __future__ import annotations

import multiprocessing
import os

# Each worker opens a PostgreSQL connection per request in flight (CONN_MAX_AGE = 0), so the
# cap keeps a large machine from exhausting max_connections (100 by default); raise it with
# WEB_CONCURRENCY together with PostgreSQL's limit, or put PgBouncer in front.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Gunicorn's rule of thumb, 2 x CPUs + 1, capped."""
    return min(2 * multiprocessing.cpu_count() + 1, MAX_DEFAULT_WORKERS)


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or default_workers())
worker_class = "uvicorn_worker.UvicornWorker"

# An idle keep-alive connection is closed after this many seconds. Keep the proxy's upstream
# keepalive_timeout below it, so the proxy never reuses a connection the app is closing.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE_SECONDS", "5"))
# A worker whose event loop stops answering gunicorn's heartbeat this long is killed and
# replaced (a blocked loop serves nobody).
timeout = int(os.environ.get("GUNICORN_TIMEOUT_SECONDS", "60"))
# On a deploy or restart, requests in flight get this long to finish.
graceful_timeout = 30
# Recycling workers now and then bounds slow memory growth; the jitter keeps them from all
# restarting at once.
max_requests = 5000
max_requests_jitter = 500

# The app writes one structured line per request (helpdesk.request), with its request and
# tenant ids: gunicorn's own access log would repeat it without them.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# X-Forwarded-For/-Proto are trusted only from these addresses (the reverse proxy; 127.0.0.1
# for the container's own health check).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The heartbeat file lives in memory: a slow disk must not make healthy workers look dead.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (a tmpfs owned by the container, not shared)
