"""The guarded HTTP client for merchant-entered URLs, against real servers on loopback: it goes
only where the egress guard allows, never follows a redirect, and holds its time and size
limits whatever the server does."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpdesk import egress, http
from helpdesk.errors import BadInput, EgressRefused
from helpdesk.http import HttpFailure, check_url, fetch, post

NOT_PUBLIC = "is not a public internet address"


@dataclass
class Answer:
    """How the test server answers one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0  # before answering at all
    drip: float = 0.0  # between two bytes of the body
    declare_length: bool = True


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread: it records every request and answers each
    with the next ``Answer`` queued (200 "ok" when none is)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.bytes_sent = 0
        self.host_headers: list[list[str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(
                    Received(
                        self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                    )
                )
                receiver.host_headers.append(self.headers.get_all("Host"))
                answer = receiver.answers.pop(0) if receiver.answers else Answer()
                time.sleep(answer.wait)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.declare_length:
                        self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    step = 1 if answer.drip else 64 * 1024
                    for start in range(0, len(answer.body), step):
                        self.wfile.write(answer.body[start : start + step])
                        self.wfile.flush()
                        receiver.bytes_sent += step
                        time.sleep(answer.drip)
                except OSError:
                    pass  # the client hung up, as it should past its limits

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/hooks/helpdesk", host: str = "127.0.0.1") -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def allowed_receiver(receiver: Receiver, allow_egress) -> Receiver:
    allow_egress("127.0.0.1", receiver.port)
    return receiver


def post_json(url: str, *, timeout: float = 5, **kwargs) -> http.Response:
    return post(
        url,
        body=b'{"event":"ping"}',
        headers={"Content-Type": "application/json"},
        timeout=timeout,
        **kwargs,
    )


# Where it may go --------------------------------------------------------------------------------


def test_it_posts_the_body_and_headers_and_returns_the_answer(allowed_receiver):
    allowed_receiver.answers.append(Answer(status=202, body="收到".encode()))

    response = post_json(allowed_receiver.url("/hooks/helpdesk?shop=acme"))

    assert response == http.Response(status=202, body="收到".encode())
    [request] = allowed_receiver.received
    assert (request.method, request.path, request.body) == (
        "POST",
        "/hooks/helpdesk?shop=acme",
        b'{"event":"ping"}',
    )
    assert request.headers["Content-Type"] == "application/json"
    assert allowed_receiver.host_headers == [[f"127.0.0.1:{allowed_receiver.port}"]]


def test_a_private_address_is_refused_without_the_operators_allow_list(receiver, allow_egress):
    with pytest.raises(HttpFailure) as failure:
        post_json(receiver.url())

    assert failure.value.permanent is True
    assert failure.value.status is None
    assert NOT_PUBLIC in failure.value.message
    assert receiver.received == []


def test_a_name_resolving_to_loopback_is_refused_and_nothing_is_connected(receiver, monkeypatch):
    monkeypatch.setattr(
        egress.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
        ],
    )
    with pytest.raises(HttpFailure) as failure:
        post_json(f"https://hooks.rebind.example:{receiver.port}/x")

    assert failure.value.permanent is True
    assert "hooks.rebind.example" in failure.value.message
    assert receiver.received == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.acme.example/x", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("https:///no-host", "no server name"),
        ("https://user:pw@hooks.acme.example/x", "user name or password"),
        ("https://hooks.acme.example:99999/x", "invalid port"),
        ("https://hooks.acme.example/a b", "spaces or control characters"),
    ],
)
def test_urls_that_are_not_plain_web_addresses_are_refused_with_a_reason(url, reason):
    with pytest.raises(BadInput) as refused:
        check_url(url)
    assert reason in refused.value.message

    with pytest.raises(HttpFailure) as failure:
        post_json(url)
    assert reason in failure.value.message
    assert failure.value.permanent is True


def test_a_port_that_is_not_the_schemes_usual_one_is_refused(monkeypatch):
    monkeypatch.setattr(
        egress.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))
        ],
    )
    check_url("https://hooks.acme.example/x")
    check_url("http://hooks.acme.example/x")
    with pytest.raises(EgressRefused, match="Port 8443 is not a HTTPS port: use 443"):
        check_url("https://hooks.acme.example:8443/x")
    with pytest.raises(EgressRefused, match="Port 8080 is not a HTTP port: use 80"):
        check_url("http://hooks.acme.example:8080/x")


# Redirects, answers -----------------------------------------------------------------------------


def test_a_redirect_is_not_followed_and_says_where_it_pointed(allowed_receiver):
    with Receiver() as elsewhere:
        allowed_receiver.answers.append(
            Answer(status=302, headers={"Location": elsewhere.url("/internal")})
        )
        with pytest.raises(HttpFailure) as failure:
            post_json(allowed_receiver.url())

        assert failure.value.status == 302
        assert failure.value.permanent is True
        assert "redirect" in failure.value.message
        assert elsewhere.url("/internal") in failure.value.message
        assert elsewhere.received == []


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (404, True),
        (410, True),
        (408, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_an_error_answer_fails_permanently_unless_trying_again_may_help(
    allowed_receiver, status, permanent
):
    allowed_receiver.answers.append(Answer(status=status, body=b"nope"))

    with pytest.raises(HttpFailure) as failure:
        post_json(allowed_receiver.url())

    assert failure.value.status == status
    assert failure.value.permanent is permanent
    assert failure.value.body == b"nope"
    assert f"answered {status}" in failure.value.message


def test_only_the_first_4_kib_of_a_huge_answer_are_read(allowed_receiver):
    allowed_receiver.answers.append(Answer(body=b"x" * (20 * 1024 * 1024)))

    started = time.monotonic()
    response = post_json(allowed_receiver.url())

    assert response.body == b"x" * 4096
    assert time.monotonic() - started < 3
    assert allowed_receiver.bytes_sent < 20 * 1024 * 1024


def test_a_connection_that_fails_is_told_without_saying_why(allow_egress):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    allow_egress("127.0.0.1", port)

    with pytest.raises(HttpFailure) as failure:
        post_json(f"http://127.0.0.1:{port}/x")

    assert failure.value.permanent is False
    assert failure.value.message.startswith(f"Could not connect to the server 127.0.0.1:{port}")
    assert "refused" not in failure.value.message.lower()


# Time limits ------------------------------------------------------------------------------------


def test_a_server_that_does_not_answer_in_time_fails_and_may_be_tried_again(allowed_receiver):
    allowed_receiver.answers.append(Answer(wait=5))

    started = time.monotonic()
    with pytest.raises(HttpFailure) as failure:
        post_json(allowed_receiver.url(), timeout=0.5)

    assert time.monotonic() - started < 2
    assert failure.value.permanent is False
    assert "did not answer within 0.5 seconds" in failure.value.message


def test_a_server_dripping_its_answer_is_cut_off_at_the_time_limit(allowed_receiver):
    # Each byte arrives well within any read time-out: only a limit on the whole request holds.
    allowed_receiver.answers.append(Answer(body=b"." * 100, drip=0.1, declare_length=False))

    started = time.monotonic()
    with pytest.raises(HttpFailure) as failure:
        fetch(allowed_receiver.url(), max_bytes=1000, timeout=1)

    assert time.monotonic() - started < 2.5
    assert "did not answer within 1 seconds" in failure.value.message


# Fetching files ---------------------------------------------------------------------------------


def test_fetch_returns_the_file_its_type_and_its_name(allowed_receiver):
    allowed_receiver.answers.append(
        Answer(
            body=b"%PDF-1.7 invoice",
            headers={
                "Content-Type": "application/pdf; name=x",
                "Content-Disposition": "attachment; filename*=UTF-8''%E5%8F%91%E7%A5%A8.pdf",
            },
        )
    )

    fetched = fetch(allowed_receiver.url("/files/42"), max_bytes=1024, timeout=5)

    assert fetched == http.Fetched(
        content=b"%PDF-1.7 invoice", content_type="application/pdf", filename="发票.pdf"
    )


def test_fetch_names_the_file_after_the_url_when_the_server_does_not(allowed_receiver):
    allowed_receiver.answers.append(Answer(body=b"hi", headers={"Content-Type": "text/plain"}))

    fetched = fetch(
        allowed_receiver.url("/files/%E6%94%B6%E6%8D%AE.txt?sig=1"), max_bytes=10, timeout=5
    )

    assert fetched.filename == "收据.txt"


def test_fetch_refuses_a_file_declared_larger_than_the_limit_before_reading_it(allowed_receiver):
    allowed_receiver.answers.append(Answer(body=b"x" * (30 * 1024 * 1024)))

    started = time.monotonic()
    with pytest.raises(HttpFailure) as failure:
        fetch(allowed_receiver.url(), max_bytes=1024 * 1024, timeout=10)

    assert time.monotonic() - started < 3
    assert failure.value.permanent is True
    assert "larger than 1048576 bytes" in failure.value.message


def test_fetch_stops_reading_an_undeclared_body_as_soon_as_it_passes_the_limit(allowed_receiver):
    allowed_receiver.answers.append(Answer(body=b"x" * (30 * 1024 * 1024), declare_length=False))

    with pytest.raises(HttpFailure) as failure:
        fetch(allowed_receiver.url(), max_bytes=100 * 1024, timeout=10)

    assert "larger than 102400 bytes" in failure.value.message
    assert allowed_receiver.bytes_sent < 30 * 1024 * 1024


def test_fetch_takes_a_file_exactly_at_the_limit(allowed_receiver):
    allowed_receiver.answers.append(Answer(body=b"x" * 4096, declare_length=False))

    assert len(fetch(allowed_receiver.url(), max_bytes=4096, timeout=5).content) == 4096


def test_fetch_of_a_missing_file_fails_permanently(allowed_receiver):
    allowed_receiver.answers.append(Answer(status=404, body=b"no such file"))

    with pytest.raises(HttpFailure) as failure:
        fetch(allowed_receiver.url(), max_bytes=1024, timeout=5)

    assert (failure.value.status, failure.value.permanent) == (404, True)


# TLS --------------------------------------------------------------------------------------------


def self_signed(folder: Path, name: str) -> Path:
    """A certificate (and its key, in one PEM file) valid for ``name`` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_https_goes_to_the_vetted_address_and_checks_the_certificate_for_the_name(
    tmp_path, monkeypatch, allow_egress
):
    identity = self_signed(tmp_path, "hooks.acme-shop.example")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(identity)
    trusting = ssl.create_default_context(cafile=str(identity))
    asked: list[str] = []

    def resolve(host, port, *args, **kwargs):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with Receiver(tls=server_tls) as server:
        for name in ("hooks.acme-shop.example", "other.acme-shop.example"):
            allow_egress(name, server.port)
        monkeypatch.setattr(egress.socket, "getaddrinfo", resolve)

        response = post_json(server.url(host="hooks.acme-shop.example"), ssl_context=trusting)

        assert response.status == 200
        # The name was resolved once, by the guard; the connection went to the address it
        # vetted (a literal, which needs no lookup), and the Host header keeps the name.
        assert asked == ["hooks.acme-shop.example", "127.0.0.1"]
        assert server.received[0].headers["Host"] == f"hooks.acme-shop.example:{server.port}"

        # The same server, reached under a name its certificate is not for, is refused.
        with pytest.raises(HttpFailure) as failure:
            post_json(server.url(host="other.acme-shop.example"), ssl_context=trusting)
        assert "certificate" in failure.value.message
        assert failure.value.permanent is False
        assert len(server.received) == 1
