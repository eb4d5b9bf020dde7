"""The one small interface every inbound channel implements.

A request reaches ``/inbound/<merchant>/<kind>/<channel id>/`` (``channels_in.views.inbound``).
The channel's adapter then, in order:

1. ``handshake``: answers a provider's verification GET (WeChat's echo), if the channel has one;
2. ``verify``: checks the signature or secret, raising ``Refused`` (nothing is stored);
3. ``envelope``: picks what of the request it will need (the body, the headers that matter, the
   query string, form fields); the pipeline stores that envelope, so a retry parses exactly
   what arrived;
4. ``delivery_id``: the provider's id for the delivery, for deduplication;
5. ``answer``: what the provider is told at once (status, content type, body).

A worker later calls ``parse`` on the stored envelope: normalised messages (``InboundMessage``)
and events (``InboundEvent``). For an agent's reply the adapter ``prepare_reply``s the message
(addressing, threading, ids) and ``send``s it; ``channels_in.outbound`` claims, retries and
records the delivery state around it.
"""

from __future__ import annotations

import abc
import base64
import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tickets.incoming import Identity, InboundAttachment, InboundEvent, InboundMessage

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from channels_in.models import ChannelAccount, RawInbound
    from tickets.models import Message

__all__ = [
    "Adapter",
    "AdapterError",
    "Answer",
    "Envelope",
    "Identity",
    "InboundAttachment",
    "InboundEvent",
    "InboundMessage",
    "Refused",
]


class AdapterError(Exception):
    """A channel could not parse or deliver something.

    ``permanent=True`` means retrying cannot help (bad credentials, a payload that is not mail);
    the pipeline then records the error and stops retrying.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Refused(Exception):
    """A request refused before anything is stored: a bad signature, a stale timestamp, a body
    that is not the channel's. The provider is told why, with ``status`` and a stable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    """What the endpoint tells the provider at once."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, data: dict[str, Any]) -> Answer:
        return cls(status, json.dumps(data, ensure_ascii=False).encode())

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Answer:
        return cls.json(status, {"message": message, "code": code, "extra": {}})

    def response(self) -> HttpResponse:
        return HttpResponse(self.body, status=self.status, content_type=self.content_type)


@dataclass(frozen=True)
class Envelope:
    """One delivery as its adapter needs it: the body and what of the request goes with it.

    Stored with the raw payload (``RawInbound.payload`` holds ``body``, ``RawInbound.envelope``
    the rest), so a retry, days later, parses exactly what arrived.
    """

    body: bytes
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)  # names lower-case
    query: dict[str, list[str]] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, body: bytes) -> Envelope:
        """A payload with nothing around it (a mail read from IMAP or a file)."""
        return cls(body=body)

    @classmethod
    def from_request(
        cls, request: HttpRequest, *, headers: tuple[str, ...] = (), body: bytes | None = None
    ) -> Envelope:
        """The request's body (or ``body``), query string and the named headers."""
        return cls(
            body=request.body if body is None else body,
            method=request.method or "POST",
            headers={
                name.lower(): request.headers[name] for name in headers if name in request.headers
            },
            query={key: request.GET.getlist(key) for key in request.GET},
        )

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def meta(self) -> dict[str, Any]:
        """Everything but the body, as stored in ``RawInbound.envelope``."""
        meta: dict[str, Any] = {"method": self.method}
        for key in ("headers", "query", "form"):
            if getattr(self, key):
                meta[key] = getattr(self, key)
        return meta

    @classmethod
    def stored(cls, body: bytes, meta: dict[str, Any] | None) -> Envelope:
        meta = meta or {}
        return cls(
            body=body,
            method=meta.get("method", "POST"),
            headers=dict(meta.get("headers") or {}),
            query=dict(meta.get("query") or {}),
            form=dict(meta.get("form") or {}),
        )


class Adapter(abc.ABC):
    """One channel. Subclasses live one per module and are named in ``channels_in.registry``."""

    kind: ClassVar[str] = ""
    # The largest body the endpoint reads for this channel; None: HELPDESK_INBOUND_MAX_BYTES.
    max_body_bytes: ClassVar[int | None] = None

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    # --- the request: the generic endpoint calls these, in this order ---------------------

    def handshake(self, request: HttpRequest) -> Answer | None:
        """Answer a provider's verification request (a GET), or None when this is not one.
        Channels without a handshake answer every GET with 405."""
        return None

    @abc.abstractmethod
    def verify(self, request: HttpRequest) -> None:
        """Check the request's signature or secret; raise ``Refused`` when it is not the
        provider's. Runs before anything is stored."""

    def envelope(self, request: HttpRequest) -> Envelope:
        """What of the request is stored and later parsed: by default the body and query."""
        return Envelope.from_request(request)

    def answer(self, raw: RawInbound, created: bool) -> Answer:
        """The provider's answer once the delivery is stored (a redelivery too)."""
        return Answer.json(
            202,
            {"status": "accepted" if created else "duplicate", "id": raw.pk, "state": raw.state},
        )

    def refuse_payload(self, error: AdapterError) -> Answer:
        """The answer when ``delivery_id`` finds the body plainly not of this channel."""
        return Answer.error(400, "bad_payload", error.message)

    # --- the stored delivery ----------------------------------------------------------------

    @abc.abstractmethod
    def delivery_id(self, envelope: Envelope) -> str:
        """The provider's id for a delivery, cheaply, before it is parsed (for deduplication).

        Raise ``AdapterError(permanent=True)`` when the payload plainly is not of this channel.
        """

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        """Who sent a payload and what about (sender, subject), read cheaply when it is stored,
        so an admin can tell stored payloads apart before they are parsed. Best effort."""
        return "", ""

    @abc.abstractmethod
    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        """Turn one stored delivery into the messages and events it carries; raise
        AdapterError if it cannot."""

    # --- agents' replies ----------------------------------------------------------------------

    @classmethod
    def reply_accounts(cls, accounts: QuerySet[ChannelAccount]) -> QuerySet[ChannelAccount]:
        """Of a merchant's active accounts of this kind, those set up to send replies."""
        return accounts

    @abc.abstractmethod
    def prepare_reply(self, message: Message) -> None:
        """Address an agent's reply before it is saved: set its ``external_id``, ``subject``,
        ``conversation_id`` and whatever addressing ``send`` will need in ``metadata``. Raise
        ``helpdesk.errors.BadInput`` when the customer cannot be answered on this channel."""

    @abc.abstractmethod
    def send(self, message: Message) -> str:
        """Deliver a prepared reply; return the provider's id for it. Raise AdapterError on
        failure (``permanent=True`` when retrying cannot help)."""

    def reply_failed(self, message: Message) -> None:
        """The reply failed for good (no try follows): tidy what ``send`` left waiting.
        Nothing to tidy by default."""
        return None


# --- shared secrets, for channels whose provider presents one ----------------------------------


def presented_secret(request: HttpRequest) -> str:
    """The channel secret from X-Helpdesk-Secret, a Bearer token or HTTP Basic's password."""
    if request.headers.get("X-Helpdesk-Secret"):
        return request.headers["X-Helpdesk-Secret"]
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def accepted_secrets(account: ChannelAccount) -> list[str]:
    """The channel's secret, and the one it replaced while its grace period lasts."""
    secrets = [account.inbound_secret]
    if (
        account.previous_inbound_secret
        and account.previous_secret_valid_until
        and account.previous_secret_valid_until > timezone.now()
    ):
        secrets.append(account.previous_inbound_secret)
    return secrets


def secret_accepted(account: ChannelAccount, presented: str) -> bool:
    """Whether ``presented`` is the channel's secret (or the one it replaced, in its grace).

    Both comparisons always run, in constant time, so the answer's timing tells nothing about
    which secret (if any) came close.
    """
    current = hmac.compare_digest(presented.encode(), account.inbound_secret.encode())
    previous = hmac.compare_digest(
        presented.encode(), (account.previous_inbound_secret or "").encode()
    )
    return bool(presented) and (current or (previous and len(accepted_secrets(account)) > 1))


def inbound_max_bytes(adapter: Adapter) -> int:
    return adapter.max_body_bytes or settings.HELPDESK_INBOUND_MAX_BYTES
