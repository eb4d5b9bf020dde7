"""Header decoding (RFC 2047, RFC 2231, raw 8-bit), addresses, message ids and dates."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from typing import NamedTuple

from channels_in.mail.charsets import decode_bytes

ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
ENCODED_WORD_TEXT = re.compile(ENCODED_WORD.pattern.decode("ascii"))
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def raw_headers(msg: Message, name: str) -> list[bytes]:
    lowered = name.lower()
    values: list[bytes] = []
    for key, value in msg.raw_items():
        if key.lower() == lowered:
            raw = str(value).encode("utf-8", "surrogateescape")
            values.append(_FOLD.sub(b"", raw).strip())
    return values


def raw_header(msg: Message, name: str) -> bytes | None:
    values = raw_headers(msg, name)
    return values[0] if values else None


def _decode_b(data: bytes) -> bytes:
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    while data:
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            data = data[:-1]  # a lone trailing character cannot be decoded
    return b""


def decode_header_bytes(raw: bytes, hints: Iterable[str] = ()) -> str:
    """Decode a header value: RFC 2047 words (split or malformed ones too) and raw 8-bit bytes."""
    raw = _FOLD.sub(b"", raw)
    hints = tuple(hints)
    pieces: list[tuple[bytes, str | None]] = []
    position = 0
    previous_encoded = False
    for match in ENCODED_WORD.finditer(raw):
        between = raw[position : match.start()]
        if between and not (previous_encoded and between.isspace()):
            pieces.append((between, None))
            previous_encoded = False
        label = match.group(1).split(b"*")[0].decode("ascii", "replace")
        text = match.group(3)
        is_base64 = match.group(2) in b"bB"
        decoded = _decode_b(text) if is_base64 else binascii.a2b_qp(text, header=True)
        if previous_encoded and pieces and pieces[-1][1] == label.lower():
            # Multi-byte characters split across adjacent words must be joined before decoding.
            pieces[-1] = (pieces[-1][0] + decoded, label.lower())
        else:
            pieces.append((decoded, label.lower()))
        previous_encoded = True
        position = match.end()
    if position < len(raw):
        pieces.append((raw[position:], None))
    return "".join(decode_bytes(data, label, hints) for data, label in pieces)


def collapse(text: str) -> str:
    return " ".join(text.split())


# A parameter follows ";", or only a space when a mailer forgot the ";" (`application/pdf
# name="x.pdf"`): the name must survive either way.
_PARAM = re.compile(rb'(?:^|[;\s])\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def parse_params(raw: bytes | None, hints: Iterable[str] = ()) -> tuple[str, dict[str, str]]:
    """Split `type/sub; a=b` into the lower-cased value and decoded parameters (RFC 2231 too)."""
    if not raw:
        return "", {}
    raw = _FOLD.sub(b"", raw)
    main = re.split(rb"[;\s]", raw.strip(), maxsplit=1)[0].decode("ascii", "replace").lower()
    segments: dict[str, list[tuple[int, bool, bytes]]] = {}
    for match in _PARAM.finditer(raw):
        key = match.group(1).decode("ascii", "replace").lower()
        value = match.group(2).strip()
        if value.startswith(b'"'):
            value = re.sub(rb"\\(.)", rb"\1", value[1:-1] if value.endswith(b'"') else value[1:])
        extended = key.endswith("*")
        key = key.rstrip("*")
        index = 0
        section = re.fullmatch(r"(.+)\*(\d+)", key)
        if section:
            key, index = section.group(1), int(section.group(2))
        segments.setdefault(key, []).append((index, extended, value))
    params: dict[str, str] = {}
    for key, parts in segments.items():
        parts.sort(key=lambda item: item[0])
        if any(extended for _, extended, _ in parts):
            charset: str | None = None
            data = b""
            for position, (_, extended, value) in enumerate(parts):
                if extended:
                    if position == 0 and value.count(b"'") >= 2:
                        label, _, value = value.split(b"'", 2)
                        charset = label.decode("ascii", "replace") or None
                    value = re.sub(
                        rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value
                    )
                data += value
            params[key] = decode_bytes(data, charset, hints)
        else:
            params[key] = decode_header_bytes(b"".join(value for _, _, value in parts), hints)
    return main, params


_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def valid_address(address: str) -> bool:
    local, _, domain = address.partition("@")
    return bool(local and domain) and "@" not in domain and not any(c.isspace() for c in address)


class Mailbox(NamedTuple):
    name: str
    address: str  # as written: may lack a domain ("root") or be empty (`<>`)
    bracketed: bool  # written in angle brackets, so meant as an address, not a name


def normalise_address(address: str) -> str:
    """An address as stored: lower case, without the trailing dot some mailers add."""
    return address.strip().rstrip(".").lower()


def split_addresses(text: str) -> list[str]:
    """Split an address list at commas outside quotes, <>, comments and encoded words.

    An entry with neither "@" nor "<" is the first half of an unquoted name such as
    `Müller, Hans <h@x.de>`, so it is joined to the entry after it.
    """
    entries: list[str] = []
    current: list[str] = []
    quoted = False
    angle = comment = 0
    index = 0
    while index < len(text):
        char = text[index]
        word = ENCODED_WORD_TEXT.match(text, index) if char == "=" else None
        if word:  # a sloppy Q-encoded word may carry a raw comma
            current.append(word.group(0))
            index = word.end()
            continue
        if quoted and char == "\\":
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == '"' and not comment:
            quoted = not quoted
        elif not quoted:
            if char == "(":
                comment += 1
            elif char == ")" and comment:
                comment -= 1
            elif char == "<" and not comment:
                angle += 1
            elif char == ">" and angle:
                angle -= 1
            elif char == "," and not angle and not comment:
                entries.append("".join(current))
                current = []
                index += 1
                continue
        current.append(char)
        index += 1
    entries.append("".join(current))
    joined: list[str] = []
    pending = ""
    for entry in entries:
        entry = f"{pending},{entry}" if pending else entry
        pending = ""
        if entry.strip() and "@" not in entry and "<" not in entry:
            pending = entry
        elif entry.strip():
            joined.append(entry.strip())
    if pending:
        joined.append(pending.strip())
    return joined


def mailboxes(raw: bytes, hints: Iterable[str] = ()) -> list[Mailbox]:
    """Each mailbox of a From-like header, in order; names are decoded after splitting."""
    hints = tuple(hints)
    text = raw.decode("utf-8", "surrogateescape")
    return [_mailbox(entry, hints) for entry in split_addresses(text)]


def _mailbox(entry: str, hints: tuple[str, ...]) -> Mailbox:
    angle = re.search(r"<([^<>]*)>[^<>]*$", entry)
    if angle:
        address = _decode_text(angle.group(1), hints).strip().strip("\"'").strip()
        if valid_address(address) or not re.search(r"[\s@]", address):
            # Quotes are dropped and quoted pairs unescaped before encoded words are decoded,
            # so an encoded `Last, First` stays one name.
            name = re.sub(r'\\(.)|"', lambda found: found.group(1) or "", entry[: angle.start()])
            return Mailbox(collapse(_decode_text(name, hints)).strip("'"), address, True)
    name, address = _recover(_decode_text(entry, hints))
    return Mailbox(name, address, False)


def _decode_text(text: str, hints: tuple[str, ...]) -> str:
    return decode_header_bytes(text.encode("utf-8", "surrogateescape"), hints)


def parse_from(text: str) -> tuple[str, str]:
    """Return (display name, address) of the first mailbox in a decoded From-like header."""
    found = [_recover(entry) for entry in split_addresses(text.strip())]
    for name, address in found:
        if valid_address(address):
            return name, address
    for name, address in found:
        if address:
            return name, address
    return found[0] if found else ("", "")


def _recover(text: str) -> tuple[str, str]:
    """(display name, address) of one decoded mailbox, recovering garbage."""
    text = text.strip()
    if not text:
        return "", ""
    angle = re.search(r"<([^<>]*)>\s*$", text)
    if angle and valid_address(angle.group(1).strip().strip("\"'")):
        name = text[: angle.start()]
        return name.strip().strip("\"'").strip(), angle.group(1).strip().strip("\"'")
    name, address = parseaddr(text)
    address = address.strip().strip("\"'")
    if valid_address(address):
        return name.strip(), address
    found = _ADDRESS.findall(text)
    if found:  # garbled: take the last thing that looks like an address
        return name.strip() if name.strip() != address else "", found[-1]
    if address and not re.search(r"[\s<>]", address):
        return name.strip(), address  # a bare local name such as MAILER-DAEMON
    return name.strip(), ""


def parse_message_ids(raw: bytes | None) -> list[str]:
    if not raw:
        return []
    text = raw.decode("ascii", "replace")
    ids = re.findall(r"<([^<>\s]+)>", text)
    if not ids:
        ids = [token for token in re.split(r"[\s,]+", text) if "@" in token]
    return [value.strip() for value in ids if value.strip()]


def parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
