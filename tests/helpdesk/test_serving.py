"""The web server refuses slow and oversized bodies at once, on a real uvicorn over raw sockets.

A client that declares a longer body than it sends used to hold a connection with no answer
(20 s and 90 s were observed), and the 413 check ran only after the whole body had arrived.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from channels_in.models import ChannelAccount, Mailbox
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_faults import port_open, spare_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BODY_TIMEOUT_SECONDS = 2

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture(scope="module")
def web_port(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:
    """uvicorn serving helpdesk.asgi on the test database, with a 2 s body timeout."""
    with django_db_blocker.unblock():
        database = connection.settings_dict
    port = spare_port()
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}{password}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "HELPDESK_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS),
        "MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path_factory.mktemp("web") / "web.log", "ab")  # noqa: SIM115
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "helpdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "off",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(port), 30, "the web server to listen")
        yield port
    finally:
        web.terminate()
        web.wait(timeout=10)
        log.close()


@pytest.fixture
def channel(tenant_acme) -> ChannelAccount:
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.create(kind="email", name="Acme support")
        Mailbox.objects.create(account=account, address="support@acme.example")
        return account


def inbound_head(account: ChannelAccount, *headers: str) -> bytes:
    lines = [
        f"POST /inbound/acme/email/{account.pk}/ HTTP/1.1",
        "Host: 127.0.0.1",
        f"X-Helpdesk-Secret: {account.inbound_secret}",
        "Content-Type: message/rfc822",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_status(sock: socket.socket) -> int:
    response = b""
    while b"\r\n" not in response:
        chunk = sock.recv(65536)
        if not chunk:
            break
        response += chunk
    return int(response.split(b" ", 2)[1])


def send_until_answered(port: int, head: bytes, chunks: Iterator[bytes]) -> tuple[int, int]:
    """Send the head, then chunks until the server answers; (status, body bytes sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: stop sending, as a well-behaved client does
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        return read_status(sock), sent


def chunked(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    piece = b"x" * size
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_body_shorter_than_declared_gets_408_within_the_timeout(web_port, channel):
    with socket.create_connection(("127.0.0.1", web_port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(inbound_head(channel, "Content-Length: 1000") + b"From: a@b\r\n")
        status = read_status(sock)
        waited = time.monotonic() - started
        # Nor is the connection held afterwards: the server closes it (a timeout raises here).
        sock.settimeout(5)
        while sock.recv(65536):
            pass
    assert status == 408
    assert BODY_TIMEOUT_SECONDS - 0.5 < waited < BODY_TIMEOUT_SECONDS + 3


def test_a_50_mb_chunked_mail_gets_413_not_400_before_it_has_all_arrived(web_port, channel):
    head = inbound_head(channel, "Transfer-Encoding: chunked")
    status, sent = send_until_answered(web_port, head, chunked(50 * 1024 * 1024))
    assert status == 413
    assert sent < 50 * 1024 * 1024


def test_a_declared_length_above_the_limit_gets_413_before_any_body_is_sent(web_port, channel):
    with socket.create_connection(("127.0.0.1", web_port), timeout=30) as sock:
        sock.sendall(inbound_head(channel, f"Content-Length: {50 * 1024 * 1024}"))
        assert read_status(sock) == 413


def test_a_large_chunked_body_to_a_page_gets_413_past_djangos_form_limit(web_port):
    head = (
        b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, sent = send_until_answered(web_port, head, chunked(10 * 1024 * 1024))
    assert status == 413
    assert sent < 10 * 1024 * 1024


def test_a_normal_mail_is_still_accepted_with_202(web_port, channel):
    mail = customer_mail()
    with socket.create_connection(("127.0.0.1", web_port), timeout=30) as sock:
        sock.sendall(inbound_head(channel, f"Content-Length: {len(mail)}") + mail)
        assert read_status(sock) == 202


def settings_value(expression: str, **env: str) -> str:
    """A settings value as a fresh production process computes it from ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print({expression})",
        ],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "DJANGO_SECRET_KEY": "k" * 50,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (result.stdout.strip().splitlines() or [""])[-1] + result.stderr


def test_forwarded_proto_is_trusted_only_when_the_deployment_says_it_is_behind_a_proxy():
    expression = "getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)"
    assert settings_value(expression) == "None"
    assert settings_value(expression, DJANGO_BEHIND_PROXY="true") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_persistent_database_connections_are_refused_under_asgi():
    refused = settings_value("settings.DATABASES", DATABASE_CONN_MAX_AGE="60")
    assert "DATABASE_CONN_MAX_AGE must be 0" in refused
    assert settings_value("settings.DATABASES['default']['CONN_MAX_AGE']") == "0"


def test_daphne_is_loaded_only_in_development():
    assert settings_value("'daphne' in settings.INSTALLED_APPS") == "False"
    assert settings_value("'daphne' in settings.INSTALLED_APPS", DJANGO_DEBUG="true") == "True"


def test_the_health_check_answers_over_plain_http_when_https_is_enforced(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
