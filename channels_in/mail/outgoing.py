"""The text of an agent's email as the customer receives it: what the agent typed, their
signature, and the customer's previous message quoted below, as mail clients do."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.utils import timezone, translation
from django.utils.translation import gettext as _

# A long message is quoted in part: the customer has it, the quote only reminds them.
QUOTE_MAX_LINES = 40
QUOTE_MAX_CHARS = 3000

SIGNATURE_SEPARATOR = "-- \n"  # RFC 3676: mail clients recognise (and may fold) what follows


def with_signature(text: str, signature: str) -> str:
    """``text`` with the agent's signature below the standard "-- " separator."""
    signature = "\n".join(line.rstrip() for line in (signature or "").strip().splitlines())
    if not signature:
        return text
    return f"{text.rstrip()}\n\n{SIGNATURE_SEPARATOR}{signature}"


def quoted(
    *,
    text: str,
    sender_name: str,
    sender_address: str,
    written_at: datetime,
    time_zone: str,
    language: str,
) -> str:
    """The customer's message as a Gmail-style quote: "On <date>, <name> <address> wrote:"
    in the merchant's time zone and language, then each line behind "> ", capped in length."""
    lines = (text or "").strip().splitlines()
    cut = len(lines) > QUOTE_MAX_LINES
    lines = lines[:QUOTE_MAX_LINES]
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > QUOTE_MAX_CHARS:
            cut = True
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:
        return ""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    when = timezone.localtime(written_at, zone).strftime("%Y-%m-%d %H:%M")
    who = f"{sender_name} <{sender_address}>" if sender_name and sender_address else ""
    who = who or sender_name or sender_address
    with translation.override(language or None):
        if who:
            intro = _("On %(date)s, %(sender)s wrote:") % {"date": when, "sender": who}
        else:
            intro = _("On %(date)s, the customer wrote:") % {"date": when}
    body = "\n".join(f"> {line}".rstrip() for line in kept)
    if cut:
        body += "\n> [...]"
    return f"{intro}\n{body}"


def reply_text(*, text: str, signature: str = "", quote: str = "") -> str:
    """The whole plain-text body: the reply, the signature, then the quote."""
    body = with_signature(text.rstrip(), signature)
    return f"{body}\n\n{quote}" if quote else body
