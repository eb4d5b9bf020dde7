"""Reading one WeChat push: the XML (DTDs and entities refused), decrypted in safe mode.

WeChat posts ``<xml>`` documents whose children are the message's fields. In safe mode the
body carries an ``Encrypt`` field holding the real document (in compatible mode the plain
fields travel beside it: the encrypted ones win, since only they are covered by the
signature). ``read_push`` returns the fields, flat, or raises ``PushRefused`` saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.utils.translation import gettext as _

from channels_in.base import AdapterError
from channels_in.wechat_crypto import CipherError, MessageCipher

# WeChat's pushes are a few hundred bytes; a link message with a long description a few KB.
MAX_PUSH_BYTES = 64 * 1024
SUBJECT_CHARS = 120


class PushRefused(AdapterError):
    """A body that is not a WeChat push we can read, with the HTTP ``status`` and a stable
    ``code`` for the endpoint's answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, permanent=True)
        self.status = status
        self.code = code


def read_xml(body: bytes) -> dict[str, str]:
    """The fields of an ``<xml>`` document, flat (a nested field as ``Parent.Child``).

    Refused: a DTD or entity of any kind (XXE, billion laughs), a document that is not XML,
    and a root other than ``<xml>``."""
    if len(body) > MAX_PUSH_BYTES:
        raise PushRefused(413, "too_large", "The push is larger than a WeChat push can be")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise PushRefused(
            400, "xml_entities", "The XML declares a DTD or entities, which are refused"
        ) from None
    except (ParseError, ValueError) as exc:
        raise PushRefused(400, "bad_xml", f"The body is not XML: {exc}") from None
    if root.tag != "xml":
        raise PushRefused(400, "bad_xml", "The body is not a WeChat push (no <xml> root)")
    fields: dict[str, str] = {}
    _flatten(root, "", fields)
    return fields


def _flatten(element: Element, prefix: str, fields: dict[str, str]) -> None:
    for child in element:
        name = f"{prefix}{child.tag}"
        if len(child):
            _flatten(child, f"{name}.", fields)
        elif name not in fields:
            fields[name] = child.text or ""


@dataclass(frozen=True)
class Push:
    """One push's fields, with the few every push has read out."""

    fields: dict[str, str]
    encrypted: bool = False

    def get(self, name: str) -> str:
        return self.fields.get(name, "").strip()

    @property
    def msg_type(self) -> str:
        return self.get("MsgType").lower()

    @property
    def event(self) -> str:
        return self.get("Event")

    @property
    def openid(self) -> str:
        return self.get("FromUserName")

    @property
    def create_time(self) -> str:
        return self.get("CreateTime")

    @property
    def created_at(self) -> datetime | None:
        try:
            return datetime.fromtimestamp(int(self.create_time), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None

    @property
    def delivery_key(self) -> str:
        """What WeChat's retries of this push share: its MsgId, else (events have none) the
        sender, the time and the event, as WeChat's documentation advises."""
        msg_id = self.get("MsgId")
        if msg_id:
            return msg_id
        return f"{self.openid}:{self.create_time}:{self.event or self.msg_type}"


def read_push(body: bytes, *, encrypted: bool, cipher: MessageCipher | None) -> Push:
    """The push in ``body``: decrypted when ``encrypted`` (the query said
    ``encrypt_type=aes``), which needs the channel's ``cipher``."""
    fields = read_xml(body)
    if not encrypted:
        push = Push(fields)
    else:
        if cipher is None:
            raise PushRefused(
                403, "no_aes_key", "The push is encrypted and this channel has no EncodingAESKey"
            )
        if not fields.get("Encrypt", "").strip():
            raise PushRefused(400, "bad_xml", "The push says it is encrypted but has no Encrypt")
        try:
            inner = cipher.decrypt(fields["Encrypt"])
        except CipherError as exc:
            raise PushRefused(
                403, "bad_encryption", f"The push cannot be decrypted: {exc}"
            ) from None
        push = Push(read_xml(inner), encrypted=True)
    if not push.msg_type or not push.openid:
        raise PushRefused(400, "bad_push", "The push has no MsgType or FromUserName")
    return push


# --- what agents read -------------------------------------------------------------------------


def text_of(push: Push) -> str:
    """What an agent reads for a message of each WeChat type."""
    kind = push.msg_type
    if kind == "text":
        return push.fields.get("Content", "")
    if kind == "voice":
        recognition = push.get("Recognition")
        if recognition:
            return _("(voice message, recognised by WeChat) %(text)s") % {"text": recognition}
        return _("(voice message)")
    if kind == "image":
        return _("(image)")
    if kind == "video":
        return _("(video)")
    if kind == "shortvideo":
        return _("(short video)")
    if kind == "location":
        return _("(location) %(label)s, latitude %(lat)s, longitude %(lng)s") % {
            "label": push.get("Label"),
            "lat": push.get("Location_X"),
            "lng": push.get("Location_Y"),
        }
    if kind == "link":
        return "\n".join(
            part for part in (push.get("Title"), push.get("Description"), push.get("Url")) if part
        )
    return _("(a WeChat message of type %(type)s, which the helpdesk cannot show)") % {"type": kind}


def subject_of(text: str) -> str:
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first_line[:SUBJECT_CHARS].rstrip()


def media_extension(push: Push) -> str:
    if push.msg_type == "voice":
        return "." + (push.get("Format").lower() or "amr")
    if push.msg_type == "image":
        return ".jpg"
    return ".mp4"
