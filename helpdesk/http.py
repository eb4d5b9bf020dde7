"""The guarded HTTP client for URLs merchants enter: the webhooks we post to, files they link.

Every request goes through ``helpdesk.egress``: the URL's host must resolve only to public
addresses and use the scheme's usual port (or be allow-listed by the operator), checked again
at every request, and the connection goes to the address that was checked (the Host header and
TLS's server name and certificate check keep the name). Redirects are not followed (the next
hop would be a destination nobody checked): one is a failure that says where it pointed. Each
request has one time limit for everything (connecting, TLS, the answer's headers and body),
held by a watchdog that cuts the connection, so a server dripping bytes cannot hold a worker;
a body larger than allowed is refused from its Content-Length, else as soon as it passes the
limit. Failures are ``HttpFailure`` with a message a merchant may read: network errors say
nothing about what listens where (``egress.merchant_safe_error``).
"""

from __future__ import annotations

import contextlib
import email.message
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import urllib3
from django.utils.translation import gettext as _
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, ReadTimeoutError, SSLError

from helpdesk import egress
from helpdesk.errors import BadInput, EgressRefused

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 4 * 1024
USER_AGENT = "Helpdesk-Webhooks/1.0"
DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK_BYTES = 16 * 1024
# What may stay unencoded in a request target: RFC 3986's reserved and unreserved characters,
# and "%" so an address already percent-encoded is sent as it was typed.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Response:
    """A 2xx answer to ``post``: its status and the first 4 KiB of its body."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Fetched:
    """A file ``fetch`` downloaded: its bytes, media type (without parameters) and name."""

    content: bytes
    content_type: str
    filename: str


class HttpFailure(Exception):
    """A request that did not succeed. ``message`` is safe to show the merchant; ``permanent``
    says whether trying again later may help; ``status`` is the server's answer, if any, and
    ``body`` the first 4 KiB of it."""

    def __init__(
        self, message: str, *, permanent: bool, status: int | None = None, body: bytes = b""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.body = body


@dataclass(frozen=True)
class _Destination:
    scheme: str
    host: str  # ASCII (IDNA), lower-case, IPv6 without brackets
    port: int
    target: str  # path and query, percent-encoded

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def checked_merchant_url(url: str, *, field: str, max_chars: int, too_long: str) -> str:
    """A URL a merchant saves for the platform to post to, trimmed; "" when empty. Refused with
    ``too_long`` past ``max_chars``, else as ``check_url`` refuses it, naming ``field``."""
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > max_chars:
        raise BadInput(too_long, field=field)
    try:
        check_url(url)
    except EgressRefused as refused:
        raise EgressRefused(refused.message, field=field) from refused
    except BadInput as refused:
        raise BadInput(refused.message, field=field) from refused
    return url


def check_url(url: str) -> None:
    """Return if the platform may send requests to ``url``, else raise ``BadInput`` (not an
    http or https address, no host, a user name or password in it) or ``EgressRefused`` (the
    host is not public, or the port is not the scheme's usual one)."""
    destination = _parse(url)
    egress.check_destination(destination.host, destination.port, purpose=destination.scheme)


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """POST ``body`` to ``url`` and return the 2xx answer; anything else raises
    ``HttpFailure``: 408, 429, 5xx, time-outs and network errors may pass (not permanent);
    other 4xx, redirects and refused destinations will not (permanent).

    ``ssl_context`` replaces the system's trusted certificates (tests trust their own).
    """
    with _exchange(
        "POST", url, body=body, headers=headers, timeout=timeout, ssl_context=ssl_context
    ) as (response, destination, deadline):
        excerpt = _read_excerpt(response, deadline)
        _refuse_unless_ok(response, destination, excerpt)
        return Response(status=response.status, body=excerpt)


def fetch(
    url: str, *, max_bytes: int, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> Fetched:
    """GET the file at ``url``, at most ``max_bytes`` of it, or raise ``HttpFailure`` (a larger
    file is refused, permanently, without reading past the limit)."""
    with _exchange("GET", url, body=None, headers={}, timeout=timeout, ssl_context=ssl_context) as (
        response,
        destination,
        deadline,
    ):
        if not 200 <= response.status < 300:
            _refuse_unless_ok(response, destination, _read_excerpt(response, deadline))
        too_large = HttpFailure(
            _("The file at %(host)s is larger than %(limit)s bytes.")
            % {"host": destination.authority, "limit": max_bytes},
            permanent=True,
            status=response.status,
        )
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > max_bytes:
            raise too_large
        chunks, size = [], 0
        for chunk in response.stream(_CHUNK_BYTES, decode_content=True):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
            deadline.check()
        if deadline.expired:  # the watchdog cut a body of unknown length short
            raise _Expired
        return Fetched(
            content=b"".join(chunks),
            content_type=_media_type(response.headers.get("Content-Type", "")),
            filename=_filename(response.headers.get("Content-Disposition", ""), destination),
        )


# --- one exchange ----------------------------------------------------------------------------


class _Expired(Exception):
    """The request's time limit passed."""


class _Deadline:
    """One time limit for a whole request. A watchdog shuts the connection down when it passes,
    which unblocks any read, however the server paces its bytes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._socket: socket.socket | None = None
        self.expired = False

    def remaining(self) -> float:
        return max(self._at - time.monotonic(), 0.001)

    def check(self) -> None:
        if self.expired or time.monotonic() >= self._at:
            self.expired = True
            raise _Expired

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socket = sock
            if self._timer is None:
                self._timer = threading.Timer(self.remaining(), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        with self._lock:
            sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        # Connecting and the TLS handshake are bounded by the connect time-out, each step.
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@contextlib.contextmanager
def _exchange(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> Iterator[tuple[urllib3.BaseHTTPResponse, _Destination, _Deadline]]:
    """Send one request to the vetted address of ``url``'s host and yield the answer, unread;
    every error on the way (while the caller reads too) becomes an ``HttpFailure``."""
    try:
        destination = _parse(url)
        address = egress.connect_address(
            destination.host, destination.port, purpose=destination.scheme
        )
    except BadInput as refused:  # EgressRefused included
        raise HttpFailure(refused.message, permanent=True) from refused
    deadline = _Deadline(timeout)
    pool_options: dict[str, Any] = {
        "port": destination.port,
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "maxsize": 1,
        "deadline": deadline,
    }
    if destination.scheme == "https":
        pool: HTTPConnectionPool = _WatchedHTTPSPool(
            address,
            server_hostname=destination.host,
            assert_hostname=destination.host,
            cert_reqs="CERT_REQUIRED",
            ssl_context=ssl_context,
            **pool_options,
        )
    else:
        pool = _WatchedHTTPPool(address, **pool_options)
    request_headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        **{name: value for name, value in headers.items() if name.lower() != "host"},
        "Host": destination.authority,
    }
    response = None
    try:
        response = pool.urlopen(
            method,
            destination.target,
            body=body,
            headers=request_headers,
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=True,
        )
        yield response, destination, deadline
    except (_Expired, ReadTimeoutError) as slow:
        raise _too_slow(destination, deadline) from slow
    except SSLError as exc:
        if deadline.expired:
            raise _too_slow(destination, deadline) from exc
        reference = egress.new_reference()
        logger.warning("egress %s: TLS with %s failed: %s", reference, destination.authority, exc)
        raise HttpFailure(
            _(
                "The secure connection to %(host)s failed: it must serve HTTPS with a valid, "
                "trusted certificate for this name (reference %(reference)s)."
            )
            % {"host": destination.authority, "reference": reference},
            permanent=False,
        ) from exc
    except (HTTPError, OSError) as exc:
        if deadline.expired:
            raise _too_slow(destination, deadline) from exc
        raise HttpFailure(
            egress.merchant_safe_error(
                exc,
                what=_("the server %(host)s") % {"host": destination.authority},
                destination=f"{destination.authority} ({address})",
            ),
            permanent=False,
        ) from exc
    finally:
        deadline.cancel()
        if response is not None:
            response.close()  # never drain what was not read: close the connection instead
        pool.close()


def _too_slow(destination: _Destination, deadline: _Deadline) -> HttpFailure:
    return HttpFailure(
        _("%(host)s did not answer within %(seconds)s seconds.")
        % {"host": destination.authority, "seconds": f"{deadline.seconds:g}"},
        permanent=False,
    )


def _read_excerpt(response: urllib3.BaseHTTPResponse, deadline: _Deadline) -> bytes:
    """The first 4 KiB of the body, and not a byte more is read."""
    excerpt = b""
    while len(excerpt) < RESPONSE_EXCERPT_BYTES:
        chunk = response.read(RESPONSE_EXCERPT_BYTES - len(excerpt), decode_content=True)
        if not chunk:
            break
        excerpt += chunk
        deadline.check()
    if deadline.expired:  # the watchdog cut the body short
        raise _Expired
    return excerpt


def _refuse_unless_ok(
    response: urllib3.BaseHTTPResponse, destination: _Destination, excerpt: bytes
) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        raise HttpFailure(
            _(
                "%(host)s answered %(status)s, a redirect to %(location)s: redirects are not "
                "followed, enter the final address."
            )
            % {
                "host": destination.authority,
                "status": status,
                "location": location[:300] or "—",
            },
            permanent=True,
            status=status,
            body=excerpt,
        )
    may_pass = status in (408, 429) or status >= 500
    raise HttpFailure(
        _("%(host)s answered %(status)s %(reason)s.")
        % {"host": destination.authority, "status": status, "reason": _reason(status)},
        permanent=not may_pass,
        status=status,
        body=excerpt,
    )


# --- URLs and headers ------------------------------------------------------------------------


def _parse(url: str) -> _Destination:
    """The parts of a URL merchants may give, or ``BadInput`` saying what is wrong with it."""
    url = (url or "").strip()
    if _CONTROL.search(url):
        raise BadInput(_("The address must not contain spaces or control characters."), field="url")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadInput(
            _("Only http:// and https:// addresses can be used."), field="url", scheme=scheme
        )
    if "@" in parts.netloc:
        raise BadInput(_("The address must not contain a user name or password."), field="url")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise BadInput(_("The address has an invalid port."), field="url") from exc
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadInput(_("The address has no server name."), field="url")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise BadInput(_("The address has an invalid server name."), field="url") from exc
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Destination(scheme=scheme, host=host.lower(), port=port, target=target)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _media_type(content_type: str) -> str:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type if "/" in media_type else "application/octet-stream"


def _filename(disposition: str, destination: _Destination) -> str:
    """The file's name from Content-Disposition (RFC 6266, RFC 2231 encoded names too), else
    from the URL's last path segment; never a path."""
    name = ""
    if disposition:
        header = email.message.Message()
        header["Content-Disposition"] = disposition
        name = header.get_filename() or ""
        with contextlib.suppress(UnicodeError):
            # http.client reads header bytes as Latin-1; servers often send UTF-8 names raw.
            name = name.encode("latin-1").decode("utf-8")
    if not name:
        name = unquote(destination.target.split("?", 1)[0].rsplit("/", 1)[-1])
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(char for char in name if char.isprintable()).strip().lstrip(".")
    return name[:255] or "download"
