"""MIME tree walking: bodies, attachments, forwarded mail, uuencode, broken boundaries."""

from __future__ import annotations

import binascii
import io
import mimetypes
import re
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser

import filetype

from channels_in.base import InboundAttachment
from channels_in.mail.charsets import decode_bytes
from channels_in.mail.headers import collapse, decode_header_bytes, parse_params, raw_header
from channels_in.mail.html import html_to_text

_MAX_DEPTH = 25


_UUENCODED = re.compile(r"(?ms)^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t]*\r?$\n?")
_BOUNDARY_LINE = re.compile(rb"(?m)^--([^\s\"][^\r\n]{0,200}?)[ \t]*\r?\n(?=[A-Za-z-]+:)")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def _uudecode(body: str) -> bytes | None:
    out = bytearray()
    for line in body.splitlines():
        if not line or line in ("`", " "):
            continue
        raw = line.encode("ascii", "replace")
        try:
            out += binascii.a2b_uu(raw)
        except binascii.Error:
            # Some encoders pad lines wrongly; decode only the bytes the length char promises.
            size = (((raw[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(raw[:size])
            except binascii.Error:
                return None
    return bytes(out)


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", collapse(name)).strip(" ._")
    return name[:200]


class Collector:
    """Walks one message tree and sorts its parts into bodies and attachments."""

    def __init__(self, parser: BytesParser, max_attachment_bytes: int, hints: list[str]) -> None:
        self.parser = parser
        self.max_attachment_bytes = max_attachment_bytes
        self.hints = hints
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[InboundAttachment] = []
        self.skipped: list[dict[str, object]] = []
        self.forwarded_texts: list[str] = []
        self.notes: list[str] = []
        self.preamble = ""
        self.alternative_depth = 0
        self.section: list[int] = []  # position in each enclosing multipart, as IMAP numbers parts

    # -- helpers ------------------------------------------------------------------------------
    def content_type(self, part: Message) -> tuple[str, dict[str, str]]:
        main, params = parse_params(raw_header(part, "content-type"), self.hints)
        if "/" not in main or " " in main:
            main = part.get_default_type()
        return main, params

    def disposition(self, part: Message) -> tuple[str, dict[str, str]]:
        return parse_params(raw_header(part, "content-disposition"), self.hints)

    def payload_bytes(self, part: Message) -> bytes:
        try:
            data = part.get_payload(decode=True)
        except Exception:  # a broken transfer encoding still leaves the raw text
            data = None
        if isinstance(data, bytes):
            return data
        payload = part.get_payload()
        if isinstance(payload, str):
            return payload.encode("utf-8", "surrogateescape")
        return b""

    def part_text(self, part: Message, params: dict[str, str]) -> str:
        text = decode_bytes(self.payload_bytes(part), params.get("charset"), self.hints)
        return text.replace("\r\n", "\n").replace("\r", "\n")

    # -- walking ------------------------------------------------------------------------------
    def walk(self, part: Message, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            self.notes.append("nesting too deep")
            return
        ctype, params = self.content_type(part)
        disposition, disp_params = self.disposition(part)
        payload = part.get_payload()
        if ctype.startswith("message/"):
            self.add_message_part(part, ctype, params, disp_params, depth)
            return
        if isinstance(payload, list):
            self.walk_multipart(ctype, payload, depth)
            return
        if ctype.startswith("multipart/"):
            self.recover_multipart(part, params, depth)
            return
        filename = disp_params.get("filename") or params.get("name")
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = self.part_text(part, params)
            if ctype == "text/html":
                self.html.append(text)
            else:
                self.plain.append(self.extract_uuencoded(text))
            return
        self.add_attachment(part, ctype, params, disposition, disp_params)

    def walk_multipart(self, ctype: str, children: list[Message], depth: int) -> None:
        subtype = ctype.split("/", 1)[1] if "/" in ctype else "mixed"
        if subtype == "alternative":
            self.walk_alternative(children, depth)
        elif subtype == "signed" and children:
            self.walk(children[0], depth + 1)
            for child in children[1:]:
                self.walk_as_attachment(child, default_name=self.signature_name(child))
        elif subtype == "encrypted":
            for child in children:
                self.walk_as_attachment(child)
        else:
            self.walk_mixed(children, depth)

    def walk_mixed(self, children: list[Message], depth: int) -> None:
        """Walk the parts in order; unnamed text after this level's body becomes a file.

        A log or a saved page sent after the text is not more body text. Text right after an
        inline image is (Apple Mail: "here: [image] and here"), and so are the HTML fragments
        of one alternative.
        """
        body_found = False
        previous: Message | None = None
        for position, child in enumerate(children, start=1):
            self.section.append(position)
            extension = self.extra_text_extension(child) if body_found else ""
            if extension and not (previous is not None and self.is_inline_leaf(previous)):
                number = ".".join(map(str, self.section))
                self.walk_as_attachment(child, default_name=f"part-{number}{extension}")
            else:
                plain_before, html_before = len(self.plain), len(self.html)
                self.walk(child, depth + 1)
                texts = self.plain[plain_before:] + self.html[html_before:]
                body_found = body_found or any(text.strip() for text in texts)
            previous = child
            self.section.pop()

    def extra_text_extension(self, part: Message) -> str:
        """Return the extension for an unnamed text part outside an alternative, else ""."""
        if self.alternative_depth:
            return ""
        ctype, params = self.content_type(part)
        disposition, disp_params = self.disposition(part)
        if ctype not in ("text/plain", "text/html") or disposition == "attachment":
            return ""
        if disp_params.get("filename") or params.get("name"):
            return ""
        return ".html" if ctype == "text/html" else ".txt"

    def is_inline_leaf(self, part: Message) -> bool:
        ctype = self.content_type(part)[0]
        return (
            not ctype.startswith(("text/", "multipart/", "message/"))
            and self.disposition(part)[0] != "attachment"
        )

    def walk_alternative(self, children: list[Message], depth: int) -> None:
        saved_plain, saved_html = self.plain, self.html
        best_plain: list[str] = []
        best_html: list[str] = []
        self.alternative_depth += 1
        for child in children:
            self.plain, self.html = [], []
            self.walk(child, depth + 1)
            if any(text.strip() for text in self.plain):
                best_plain = self.plain
            if any(text.strip() for text in self.html):
                best_html = self.html
        self.alternative_depth -= 1
        self.plain, self.html = saved_plain + best_plain, saved_html + best_html

    def recover_multipart(self, part: Message, params: dict[str, str], depth: int) -> None:
        """A multipart whose boundary never appears: find the real one or keep the text."""
        data = self.payload_bytes(part)
        found = _BOUNDARY_LINE.search(data)
        if found:
            boundary = found.group(1)
            wrapped = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n' + data
            try:
                recovered = self.parser.parsebytes(wrapped)
                children = recovered.get_payload()
            except Exception:
                children = None
            if isinstance(children, list) and children:
                self.notes.append("recovered multipart boundary")
                for child in children:
                    self.walk(child, depth + 1)
                return
        self.notes.append("multipart without boundary read as text")
        text = decode_bytes(data, params.get("charset"), self.hints)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if re.search(r"<(html|body|div|p|br)\b", text, re.IGNORECASE):
            self.html.append(text)
        else:
            self.plain.append(self.extract_uuencoded(text))

    def walk_as_attachment(self, part: Message, default_name: str = "") -> None:
        ctype, params = self.content_type(part)
        disposition, disp_params = self.disposition(part)
        if isinstance(part.get_payload(), list):
            self.add_message_part(part, ctype, params, disp_params, _MAX_DEPTH)
            return
        self.add_attachment(part, ctype, params, "attachment", disp_params, default_name)

    @staticmethod
    def signature_name(part: Message) -> str:
        ctype = part.get_content_type()
        if "pgp" in ctype:
            return "signature.asc"
        if "pkcs7" in ctype:
            return "smime.p7s"
        return ""

    def add_message_part(
        self,
        part: Message,
        ctype: str,
        params: dict[str, str],
        disp_params: dict[str, str],
        depth: int,
    ) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if ctype in ("message/rfc822", "message/global") and isinstance(inner, Message):
            data = _flatten(inner)
            subject = collapse(decode_header_bytes(raw_header(inner, "subject") or b""))
            name = disp_params.get("filename") or params.get("name") or ""
            name = _safe_filename(name) or (_safe_filename(subject)[:150] + ".eml")
            if name == ".eml":
                name = "forwarded.eml"
            if depth < _MAX_DEPTH:
                nested = Collector(self.parser, self.max_attachment_bytes, self.hints)
                nested.walk(inner, depth + 1)
                text = nested.full_text()
                if text:
                    self.forwarded_texts.append(text)
            self.store(name, "message/rfc822", data, "", inline=False)
            return
        if isinstance(payload, list):
            data = b"".join(_flatten(sub) for sub in payload if isinstance(sub, Message))
        else:
            data = self.payload_bytes(part)
        default = {
            "message/delivery-status": "delivery-status.txt",
            "message/disposition-notification": "disposition-notification.txt",
        }.get(ctype, "")
        name = _safe_filename(disp_params.get("filename") or params.get("name") or "") or default
        self.store(name, ctype, data, "", inline=False)

    def add_attachment(
        self,
        part: Message,
        ctype: str,
        params: dict[str, str],
        disposition: str,
        disp_params: dict[str, str],
        default_name: str = "",
    ) -> None:
        data = self.payload_bytes(part)
        name = _safe_filename(disp_params.get("filename") or params.get("name") or "")
        if not name and ctype == "text/rfc822-headers":
            name = "rfc822-headers.txt"
        content_id = (raw_header(part, "content-id") or b"").decode("ascii", "replace")
        content_id = content_id.strip().strip("<>").strip()
        inline = disposition == "inline" or (disposition != "attachment" and bool(content_id))
        self.store(name or default_name, ctype, data, content_id, inline=inline)

    def store(self, name: str, ctype: str, data: bytes, content_id: str, *, inline: bool) -> None:
        if not name:
            extension = mimetypes.guess_extension(ctype, strict=False) or ".bin"
            name = f"attachment-{len(self.attachments) + len(self.skipped) + 1}{extension}"
        if len(data) > self.max_attachment_bytes:
            self.skipped.append({"filename": name, "size": len(data), "content_type": ctype})
            return
        self.attachments.append(
            InboundAttachment(
                filename=name,
                content_type=_sniff(data, ctype),
                content=data,
                content_id=content_id,
                inline=inline,
            )
        )

    def extract_uuencoded(self, text: str) -> str:
        """Pull `begin 644 name` blocks out of a plain-text body into attachments."""
        if "begin " not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            data = _uudecode(match.group(2))
            if data is None:
                return match.group(0)
            name = _safe_filename(match.group(1)) or ""
            guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.store(name, guessed, data, "", inline=False)
            return ""

        return _UUENCODED.sub(replace, text)

    # -- results ------------------------------------------------------------------------------
    def full_text(self) -> str:
        body = self.body_text()
        if self.preamble:
            return f"{self.preamble}\n{body}".strip()
        return body

    def body_text(self) -> str:
        plain = "\n\n".join(text.strip("\n") for text in self.plain if text.strip())
        if plain.strip():
            return plain.strip()
        from_html = "\n\n".join(html_to_text(text) for text in self.html if text.strip())
        if from_html.strip():
            return from_html.strip()
        return "\n\n".join(self.forwarded_texts).strip()


def _flatten(msg: Message) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=email_policy.compat32).flatten(msg)
    except Exception:  # an unserialisable part is kept as whatever text it has
        try:
            return msg.as_string(policy=email_policy.compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""
    return buffer.getvalue()


def _sniff(data: bytes, declared: str) -> str:
    try:
        kind = filetype.guess(data) if data else None
    except Exception:  # sniffing is a hint, never a reason to lose the file
        kind = None
    if kind is not None:
        return kind.mime
    if declared and "/" in declared:
        return declared
    return "application/octet-stream"
