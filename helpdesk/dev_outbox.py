"""The development outbox: the mail Django's file-based backend wrote, shown to the developer.

In development (DEBUG on, no mail server configured) settings point ``EMAIL_BACKEND`` at that
backend, so an agent's reply is "Sent" into ``EMAIL_FILE_PATH`` and can be read here.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from pathlib import Path

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# The file backend ends every message with a line of 79 dashes.
_SEPARATOR = re.compile(rb"^-{79}\r?\n?", re.MULTILINE)
# Enough to find the reply one just sent; the files themselves keep everything.
MAX_SHOWN = 50


@dataclass(frozen=True)
class OutboxMail:
    sender: str
    to: str
    cc: str
    subject: str
    date: datetime | None
    text: str
    file_name: str
    # Replies the relay cannot send From the merchant carry the merchant's address here.
    reply_to: str = ""


def read_outbox(folder: Path, *, limit: int = MAX_SHOWN) -> list[OutboxMail]:
    """The mails written to ``folder`` by the file backend, newest first."""
    if not folder.is_dir():
        return []
    # One file per connection, appended to as it sends: the last-written file holds the newest.
    files = sorted(
        (path for path in folder.glob("*.log") if path.is_file()),
        key=lambda path: (path.stat().st_mtime_ns, path.name),
        reverse=True,
    )
    mails: list[OutboxMail] = []
    for path in files:
        chunks = [chunk for chunk in _SEPARATOR.split(path.read_bytes()) if chunk.strip()]
        for chunk in reversed(chunks):
            mails.append(parse_outbox_mail(chunk, file_name=path.name))
            if len(mails) >= limit:
                return mails
    return mails


def parse_outbox_mail(raw: bytes, *, file_name: str) -> OutboxMail:
    """One written message as the page shows it: its headers and its plain-text body."""
    message = email.message_from_bytes(raw, policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    try:
        text = body.get_content() if body is not None else ""
    except (LookupError, ValueError):  # an unknown charset: show the bytes rather than fail
        text = body.get_payload(decode=True).decode("utf-8", "replace") if body else ""
    date_header = message["Date"]
    return OutboxMail(
        sender=str(message["From"] or ""),
        to=str(message["To"] or ""),
        cc=str(message["Cc"] or ""),
        subject=str(message["Subject"] or ""),
        date=getattr(date_header, "datetime", None),
        text=text,
        file_name=file_name,
        reply_to=str(message["Reply-To"] or ""),
    )


def outbox(request: HttpRequest) -> HttpResponse:
    """The development outbox page; it does not exist (404) unless DEBUG is on."""
    # Checked on every request, not only when the URLs load, so no production process serves it
    # and tests can switch DEBUG with override_settings.
    if not settings.DEBUG:
        raise Http404("The outbox exists only in development")
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    folder = Path(settings.EMAIL_FILE_PATH)
    return render(
        request,
        "dev/outbox.html",
        {
            "mails": read_outbox(folder),
            "folder": folder,
            "max_shown": MAX_SHOWN,
            "backend": settings.EMAIL_BACKEND,
            "writes_to_outbox": settings.EMAIL_BACKEND == FILE_BACKEND,
        },
    )
