"""Finding the header block: lines before it skipped, continuation lines without indent folded.

Both the parser and the inbound endpoint's cheap check read mail through `frame_mail`, so they
accept and refuse the same payloads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from itertools import takewhile
from typing import NamedTuple

# A payload is mail if its header block has at least one of these; JSON or prose has none.
KEY_HEADERS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "received",
        "return-path",
        "delivered-to",
    }
)
# Headers common enough that a line starting with one ends a run of unindented text.
_KNOWN_HEADERS = KEY_HEADERS | {
    "bcc",
    "organization",
    "user-agent",
    "importance",
    "priority",
    "precedence",
    "auto-submitted",
    "errors-to",
    "authentication-results",
    "disposition-notification-to",
    "return-receipt-to",
    "accept-language",
}
_KNOWN_PREFIXES = ("x-", "content-", "list-", "resent-", "arc-", "dkim-", "thread-", "received-")

_EOL = re.compile(rb"\r\n|\r|\n")
# A field name as Python's parser reads it: no space before the colon.
_FIELD = re.compile(rb"([!-9;-~]+):")
_MBOX_FROM = re.compile(rb"From ")  # mbox separator, e.g. "From someone@x Mon Jan  1 ..."
# email.feedparser's headerRE: a line it keeps in the header block.
_PYTHON_HEADER_LINE = re.compile(rb"From |[!-9;-~]*:|[ \t]")

# Forwarding banners and mbox lines are short; a header block found further down is a quoted
# mail inside a text, not this mail's own headers.
_MAX_SKIPPED_LINES = 20
_MAX_SKIPPED_BYTES = 8192
_MAX_FOLDED_RUN = 20
_MAX_HEADER_LINES = 5000  # a bound on the work for bytes that never reach a blank line


class FramedMail(NamedTuple):
    raw: bytes  # the mail from its header block on, unindented continuation lines folded
    header_end: int  # offset in raw where the header block ends
    notes: list[str]  # what had to be repaired, for the message's metadata


def _lines(raw: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    position = start
    while position < len(raw):
        found = _EOL.search(raw, position)
        end = found.end() if found else len(raw)
        yield position, raw[position:end]
        position = end


def _is_blank(line: bytes) -> bool:
    return not line.rstrip(b"\r\n")


def _field_name(line: bytes) -> str | None:
    found = _FIELD.match(line)
    return found.group(1).decode("ascii").lower() if found else None


def _is_header_line(line: bytes) -> bool:
    return bool(_PYTHON_HEADER_LINE.match(line))


def _is_known(name: str | None) -> bool:
    return name is not None and (name in _KNOWN_HEADERS or name.startswith(_KNOWN_PREFIXES))


def frame_mail(raw: bytes) -> FramedMail | None:
    """Return the mail from its header block on, or None if the bytes have no header block."""
    for index, (start, line) in enumerate(_lines(raw)):
        if index >= _MAX_SKIPPED_LINES or start > _MAX_SKIPPED_BYTES:
            return None
        if not (_FIELD.match(line) or _MBOX_FROM.match(line)):
            continue
        lines: list[bytes] = []
        for _, following in _lines(raw, start):
            if _is_blank(following) or len(lines) >= _MAX_HEADER_LINES:
                break
            lines.append(following)
        folded, notes = _fold_unindented(lines)
        # What Python's parser will read as headers: up to the first line that is not one.
        parsed = list(takewhile(_is_header_line, folded))
        names = {_field_name(item) for item in parsed} & KEY_HEADERS
        skipped = raw[:start].strip()
        # Skipping a banner needs a real header block; one "Subject:" in prose is not one.
        if len(names) < (2 if skipped else 1):
            continue
        if skipped:
            notes.insert(0, "text before the header block skipped")
        rest = raw[start + sum(map(len, lines)) :]
        return FramedMail(b"".join(folded) + rest, sum(map(len, parsed)), notes)
    return None


def _fold_unindented(lines: list[bytes]) -> tuple[list[bytes], list[str]]:
    """Indent lines that continue a header without leading whitespace.

    Python's parser ends the header block at the first such line, so a long Subject or To
    wrapped by a careless mailer pushes Content-Type and Message-ID into the body. A run of
    such lines counts as a continuation only if a known header follows it; otherwise it is the
    body of a mail that lacks the blank separator line, and Python's reading is right.
    """
    folded: list[bytes] = []
    run: list[bytes] = []
    notes: list[str] = []
    for line in lines:
        if _is_header_line(line):
            if run and len(run) <= _MAX_FOLDED_RUN and _is_known(_field_name(line)):
                run = [b" " + item for item in run]
                if not notes:
                    notes.append("header continued on unindented lines")
            folded += [*run, line]
            run = []
        else:
            run.append(line)
    return folded + run, notes


def header_block(raw: bytes) -> Message | None:
    """The mail's headers alone, read as the parser reads them (``frame_mail``: banners and
    mbox lines before them skipped, unindented continuation lines folded); None when the bytes
    hold no header block."""
    framed = frame_mail(raw)
    if framed is None:
        return None
    return BytesHeaderParser(policy=compat32).parsebytes(framed.raw[: framed.header_end])
