"""The entry point: parse_mail turns raw mail bytes into an InboundMessage."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from email import policy as email_policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

from channels_in.base import AdapterError, InboundMessage
from channels_in.mail.automated import AUTOMATION_HEADERS, automated_reason
from channels_in.mail.charsets import decode_bytes, resolve_charset
from channels_in.mail.framing import KEY_HEADERS, frame_mail
from channels_in.mail.headers import (
    ENCODED_WORD,
    Mailbox,
    collapse,
    decode_header_bytes,
    mailboxes,
    normalise_address,
    parse_date,
    parse_message_ids,
    parse_params,
    raw_header,
    raw_headers,
    valid_address,
)
from channels_in.mail.html import sanitise_html
from channels_in.mail.quotes import trim_quoted
from channels_in.mail.structure import Collector

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024


def parse_mail(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> InboundMessage:
    """Parse raw mail bytes into an InboundMessage; raise only AdapterError, permanent if not mail."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise AdapterError("mail must be given as bytes", permanent=True)
    raw = bytes(raw)
    if not raw.strip():
        raise AdapterError("empty mail", permanent=True)
    framed = frame_mail(raw)
    if framed is None:
        raise AdapterError("not an email message: no mail header block", permanent=True)
    last_error: Exception | None = None
    for policy in (email_policy.default, email_policy.compat32):
        try:
            return _parse(
                raw, framed.raw, framed.notes, BytesParser(policy=policy), max_attachment_bytes
            )
        except AdapterError:
            raise
        except Exception as error:  # policy.default has bugs on hostile headers; retry compat32
            last_error = error
    raise AdapterError(f"unparsable mail: {last_error!r}", permanent=True)


def _parse(
    raw: bytes,
    framed: bytes,
    framing_notes: list[str],
    parser: BytesParser,
    max_attachment_bytes: int,
) -> InboundMessage:
    msg = parser.parsebytes(framed)
    present = {key.lower() for key, _ in msg.raw_items()}
    if not present & KEY_HEADERS:
        raise AdapterError("not an email message: no mail header block", permanent=True)

    body_root, stray_prefix = _embedded_header_block(msg, parser)
    hints = _declared_charsets(body_root)

    def header(name: str) -> str:
        value = raw_header(msg, name)
        if value is None or not value.strip():
            value = raw_header(body_root, name)
        return decode_header_bytes(value, hints) if value is not None else ""

    def boxes(name: str) -> list[Mailbox]:
        values = raw_headers(msg, name) or raw_headers(body_root, name)
        return [box for value in values for box in mailboxes(value, hints)]

    author, null_sender = _author(boxes)
    sender = normalise_address(author.address)

    message_ids = parse_message_ids(raw_header(msg, "message-id"))
    message_id = message_ids[0] if message_ids else ""
    external_id = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()

    reply_to_ids: list[str] = []
    references = parse_message_ids(b" ".join(raw_headers(msg, "references")))
    for value in parse_message_ids(raw_header(msg, "in-reply-to")) + references[::-1]:
        if value not in reply_to_ids:
            reply_to_ids.append(value)

    recipients: list[str] = []
    for name in ("to", "cc"):
        raw_values = [value.decode("utf-8", "surrogateescape") for value in raw_headers(msg, name)]
        for _, address in getaddresses(raw_values):
            address = decode_bytes(address.encode("utf-8", "surrogateescape"), None, hints)
            address = normalise_address(address)
            if "@" in address and address not in recipients:
                recipients.append(address)

    collector = Collector(parser, max_attachment_bytes, hints)
    collector.walk(body_root)
    if stray_prefix.strip():
        collector.preamble = decode_bytes(stray_prefix, None, hints).strip()
        collector.notes.append("header block continued inside the body")
    full_text = collector.full_text()
    html = "\n".join(text for text in collector.html if text.strip())

    subject = collapse(header("subject"))
    ctype = collector.content_type(body_root)[0]
    automation = {name: header(name) for name in AUTOMATION_HEADERS if name in present}
    automation["subject"] = subject
    reason = automated_reason(automation, ctype, sender, null_sender=null_sender)

    defects = sorted({type(defect).__name__ for part in msg.walk() for defect in part.defects})
    metadata: dict[str, object] = {"message_id": message_id}
    if defects or framing_notes or collector.notes:
        metadata["defects"] = defects + framing_notes + collector.notes
    if collector.skipped:
        metadata["skipped_attachments"] = collector.skipped

    return InboundMessage(
        channel="email",
        external_id=external_id,
        sender_kind="email",
        sender_value=sender,
        sender_name=collapse(author.name),
        subject=subject,
        text=trim_quoted(full_text) if full_text else "",
        full_text=full_text,
        html=sanitise_html(html),
        attachments=collector.attachments,
        reply_to_ids=reply_to_ids,
        sent_at=parse_date(header("date")),
        automated=bool(reason),
        automated_reason=reason,
        recipients=recipients,
        metadata=metadata,
    )


def _author(boxes: Callable[[str], list[Mailbox]]) -> tuple[Mailbox, bool]:
    """Who wrote the mail, and whether its From is the null sender `<>` of a bounce.

    The first address of From is the author; a From without one (missing, a bare name, or
    `<>`) hands over to Reply-To, then Sender, then Return-Path, whose display name comes
    along. A local account written in brackets (`Cron Daemon <root>`) is kept as written:
    it is a machine, which automated_reason recognises.
    """
    authors = boxes("from")
    null_sender = not any(box.address for box in authors) and any(box.bracketed for box in authors)
    for box in authors:
        if valid_address(box.address):
            return box, False
    for box in authors:
        if box.bracketed and box.address:
            return box, False
    domainless = [box for box in authors if box.address]
    for name in ("reply-to", "sender", "return-path"):
        candidates = boxes(name)
        for box in candidates:
            if valid_address(box.address):
                return box, null_sender
        domainless += [box for box in candidates if box.address]
    if domainless:  # a bare name such as MAILER-DAEMON is still who sent it
        return domainless[0], null_sender
    # No address anywhere: the name in From still tells an admin who wrote.
    name = next((box.name for box in authors if box.name), "")
    return Mailbox(name, "", False), null_sender


_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def _embedded_header_block(msg: Message, parser: BytesParser) -> tuple[Message, bytes]:
    """Find MIME headers pushed into the body by a stray line; return (root to walk, stray text).

    Some bulk mailers emit a junk line between two halves of the header block, so the parser
    ends the headers early and the real Content-Type and boundary land in the body.
    """
    if raw_header(msg, "content-type") is not None or msg.is_multipart():
        return msg, b""
    body = msg.get_payload(decode=True)
    if not isinstance(body, bytes):
        return msg, b""
    lines = body[:20_000].split(b"\n")
    offset = 0
    for start, line in enumerate(lines[:4]):
        block = []
        for following in lines[start:]:
            if not following.strip():
                break
            block.append(following)
        header_lines = [item for item in block if _HEADER_LINE.match(item)]
        if (
            len(header_lines) >= 3
            and _HEADER_LINE.match(line)
            and any(item.lower().startswith(b"content-type:") for item in header_lines)
        ):
            try:
                inner = parser.parsebytes(body[offset:])
            except Exception:
                return msg, b""
            return inner, body[:offset]
        offset += len(line) + 1
    return msg, b""


def _declared_charsets(msg: Message) -> list[str]:
    found: list[str] = []
    try:
        parts = list(msg.walk())
    except Exception:
        parts = [msg]
    for part in parts:
        _, params = parse_params(raw_header(part, "content-type"))
        codec = resolve_charset(params.get("charset"))
        if codec and codec not in found and codec != "utf-7":
            found.append(codec)
    for name in ("subject", "from", "to"):
        for match in ENCODED_WORD.finditer(raw_header(msg, name) or b""):
            codec = resolve_charset(match.group(1).split(b"*")[0])
            if codec and codec not in found and codec != "utf-7":
                found.append(codec)
    return found
