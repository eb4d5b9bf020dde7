"""What a merchant's system posts to a JSON API channel, read and checked in full.

The endpoint reads the whole body before anything is stored (``JsonApiAdapter.delivery_id``),
so a body that could never be filed is answered 400 with the exact reason instead of becoming a
failed record later; the worker reads the stored body again with the same function. The format
is documented in docs/channels.md ("The JSON API channel").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from channels_in.base import AdapterError
from helpdesk.errors import BadInput
from tickets.models import CustomerEvent, IdentityKind, Ticket
from tickets.services import normalise_identity

MAX_ATTACHMENTS = 20
MAX_ID_CHARS = 200
MAX_NAME_CHARS = 200
MAX_SUBJECT_CHARS = 255
MAX_TEXT_CHARS = 200_000
MAX_HTML_CHARS = 1_000_000
MAX_FILENAME_CHARS = 255
MAX_URL_CHARS = 2000
MAX_ORDER_NUMBER_CHARS = 64
MAX_CATEGORY_CHARS = 100
_LOCALE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")
_PERSONA = re.compile(r"[a-z0-9][a-z0-9_-]*")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")


class PayloadRefused(AdapterError):
    """A body the channel cannot take, with a stable ``code`` (``bad_json``: not a JSON object;
    ``bad_request``: a JSON object not in the channel's format) and the ``field`` at fault."""

    def __init__(self, code: str, message: str, *, field: str = "") -> None:
        super().__init__(message, permanent=True)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class ApiCustomer:
    id: str
    name: str = ""
    email: str = ""
    phone: str = ""
    locale: str = ""
    vip: bool | None = None  # None: the merchant's system did not say
    persona: str = ""  # the persona group the customer chose, by its slug


@dataclass(frozen=True)
class ApiAttachment:
    filename: str
    content_type: str
    url: str = ""
    content: bytes | None = None  # decoded content_base64; None for a file sent by URL


@dataclass(frozen=True)
class ApiMessage:
    id: str
    conversation_id: str
    text: str
    html: str = ""
    subject: str = ""
    sent_at: datetime | None = None
    order_number: str = ""
    category: str = ""
    priority: str = ""
    attachments: list[ApiAttachment] = field(default_factory=list)


@dataclass(frozen=True)
class ApiEvent:
    id: str
    type: str
    conversation_id: str = ""
    occurred_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiPayload:
    customer: ApiCustomer
    message: ApiMessage | None = None
    event: ApiEvent | None = None

    @property
    def delivery_id(self) -> str:
        """``message:<id>`` or ``event:<id>``: a redelivery of either is recognised."""
        if self.message is not None:
            return f"message:{self.message.id}"
        assert self.event is not None
        return f"event:{self.event.id}"


def read_payload(body: bytes, *, phone_region: str) -> ApiPayload:
    """The body as a message or an event with its customer, every field checked; raises
    ``PayloadRefused`` naming the first field at fault."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise PayloadRefused("bad_json", _("The body must be JSON encoded as UTF-8.")) from None
    except ValueError as exc:
        raise PayloadRefused(
            "bad_json", _("The body is not valid JSON: %(error)s") % {"error": exc}
        ) from None
    if not isinstance(document, dict):
        raise PayloadRefused("bad_json", _("The body must be a JSON object."))
    if ("message" in document) == ("event" in document):
        raise PayloadRefused(
            "bad_request", _('The body must hold either "message" or "event" (not both).')
        )
    customer = _customer(_object(document, "customer"), phone_region)
    if "message" in document:
        return ApiPayload(customer=customer, message=_message(_object(document, "message")))
    return ApiPayload(customer=customer, event=_event(_object(document, "event")))


# --- the parts -------------------------------------------------------------------------------


def _customer(raw: dict[str, Any], phone_region: str) -> ApiCustomer:
    email = _string(raw, "email", "customer.email", limit=254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise _refused("customer.email", _("is not an email address")) from None
    phone = _string(raw, "phone", "customer.phone", limit=32)
    if phone:
        try:
            normalise_identity(kind=IdentityKind.PHONE, value=phone, region=phone_region)
        except BadInput:
            raise _refused("customer.phone", _("is not a phone number")) from None
    locale = _string(raw, "locale", "customer.locale", limit=16).lower().replace("_", "-")
    if locale and not _LOCALE.fullmatch(locale):
        raise _refused("customer.locale", _('must be a language code such as "zh-hans" or "en"'))
    vip = raw.get("vip")
    if vip is not None and not isinstance(vip, bool):
        raise _refused("customer.vip", _("must be true or false"))
    persona = _string(raw, "persona", "customer.persona", limit=40).lower()
    if persona and not _PERSONA.fullmatch(persona):
        raise _refused("customer.persona", _("must be a persona's short name, such as friendly"))
    return ApiCustomer(
        id=_string(raw, "id", "customer.id", limit=MAX_ID_CHARS, required=True),
        name=_string(raw, "name", "customer.name", limit=MAX_NAME_CHARS),
        email=email,
        phone=phone,
        locale=locale,
        vip=vip,
        persona=persona,
    )


def _message(raw: dict[str, Any]) -> ApiMessage:
    attachments_raw = raw.get("attachments", [])
    if attachments_raw is None:
        attachments_raw = []
    if not isinstance(attachments_raw, list):
        raise _refused("message.attachments", _("must be a list"))
    if len(attachments_raw) > MAX_ATTACHMENTS:
        raise _refused(
            "message.attachments",
            _("may hold at most %(count)s files") % {"count": MAX_ATTACHMENTS},
        )
    attachments = [_attachment(item, index) for index, item in enumerate(attachments_raw)]
    text = _string(raw, "text", "message.text", limit=MAX_TEXT_CHARS, strip=False)
    html = _string(raw, "html", "message.html", limit=MAX_HTML_CHARS, strip=False)
    if not (text.strip() or html.strip() or attachments):
        raise _refused("message.text", _("is required (or html, or an attachment)"))
    return ApiMessage(
        id=_string(raw, "id", "message.id", limit=MAX_ID_CHARS, required=True),
        conversation_id=_string(
            raw, "conversation_id", "message.conversation_id", limit=MAX_ID_CHARS, required=True
        ),
        text=text,
        html=html,
        subject=_string(raw, "subject", "message.subject", limit=MAX_SUBJECT_CHARS),
        sent_at=_moment(raw, "sent_at", "message.sent_at"),
        order_number=_string(
            raw, "order_number", "message.order_number", limit=MAX_ORDER_NUMBER_CHARS
        ),
        category=_string(raw, "category", "message.category", limit=MAX_CATEGORY_CHARS),
        priority=_priority(raw),
        attachments=attachments,
    )


def _priority(raw: dict[str, Any]) -> str:
    priority = _string(raw, "priority", "message.priority", limit=16).lower()
    if priority and priority not in Ticket.Priority.values:
        raise _refused(
            "message.priority",
            _("must be one of %(values)s") % {"values": ", ".join(Ticket.Priority.values)},
        )
    return priority


def _attachment(raw: Any, index: int) -> ApiAttachment:
    where = f"message.attachments[{index}]"
    if not isinstance(raw, dict):
        raise _refused(where, _("must be an object"))
    filename = _string(raw, "filename", f"{where}.filename", limit=MAX_FILENAME_CHARS)
    filename = re.split(r"[/\\]", filename)[-1].strip()
    content_type = _string(raw, "content_type", f"{where}.content_type", limit=127)
    if content_type and not _CONTENT_TYPE.fullmatch(content_type):
        raise _refused(f"{where}.content_type", _('must be a media type such as "image/jpeg"'))
    has_url, has_content = "url" in raw, "content_base64" in raw
    if has_url == has_content:
        raise _refused(where, _('needs either "url" or "content_base64" (not both)'))
    if has_url:
        url = _string(raw, "url", f"{where}.url", limit=MAX_URL_CHARS, required=True)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _refused(f"{where}.url", _("must be an http:// or https:// address"))
        return ApiAttachment(filename=filename, content_type=content_type.lower(), url=url)
    encoded = raw["content_base64"]
    if not isinstance(encoded, str):
        raise _refused(f"{where}.content_base64", _("must be a string"))
    try:
        content = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _refused(f"{where}.content_base64", _("is not valid base64")) from None
    return ApiAttachment(
        filename=filename or "attachment", content_type=content_type.lower(), content=content
    )


def _event(raw: dict[str, Any]) -> ApiEvent:
    kind = _string(raw, "type", "event.type", limit=32, required=True)
    if kind not in CustomerEvent.Kind.values:
        raise _refused(
            "event.type",
            _("must be one of %(kinds)s") % {"kinds": ", ".join(CustomerEvent.Kind.values)},
        )
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _refused("event.data", _("must be an object"))
    return ApiEvent(
        id=_string(raw, "id", "event.id", limit=MAX_ID_CHARS, required=True),
        type=kind,
        conversation_id=_string(
            raw, "conversation_id", "event.conversation_id", limit=MAX_ID_CHARS
        ),
        occurred_at=_moment(raw, "occurred_at", "event.occurred_at"),
        data=data,
    )


# --- fields ----------------------------------------------------------------------------------


def _refused(where: str, problem: str) -> PayloadRefused:
    return PayloadRefused("bad_request", f"{where} {problem}.", field=where)


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        raise _refused(key, _("is required"))
    if not isinstance(value, dict):
        raise _refused(key, _("must be an object"))
    return value


def _string(
    raw: dict[str, Any],
    key: str,
    where: str,
    *,
    limit: int,
    required: bool = False,
    strip: bool = True,
) -> str:
    """A string field: ids may be given as numbers; absent or null is "" unless required."""
    value = raw.get(key)
    if value is None:
        value = ""
    elif isinstance(value, int) and not isinstance(value, bool) and key == "id":
        value = str(value)
    elif not isinstance(value, str):
        raise _refused(where, _("must be a string"))
    if strip:
        value = value.strip()
    if "\x00" in value:
        raise _refused(where, _("must not contain NUL characters"))
    if required and not value:
        raise _refused(where, _("is required"))
    if len(value) > limit:
        raise _refused(where, _("is longer than %(limit)s characters") % {"limit": limit})
    return value


def _moment(raw: dict[str, Any], key: str, where: str) -> datetime | None:
    value = _string(raw, key, where, limit=64)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _refused(
            where, _('is not an ISO 8601 time such as "2026-01-05T10:30:00+08:00"')
        ) from None
    if moment.tzinfo is None:
        raise _refused(where, _('needs a time zone offset, such as "+08:00" or "Z"'))
    return moment
