"""The email channel: raw RFC 822 in (webhook, IMAP, import), SMTP out.

Parsing (charsets, MIME, quotes, auto-replies) lives in ``channels_in.mail``; this module is the
adapter the pipeline sees.
"""

from __future__ import annotations

import hashlib
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr

from django.core.mail import EmailMultiAlternatives, get_connection

from channels_in.base import Adapter, AdapterError, InboundMessage, OutboundReply
from channels_in.crypto import decrypt_secret
from channels_in.mail import parse_mail

_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]+:)")
_MAIL_HEADERS = (
    "from",
    "message-id",
    "date",
    "subject",
    "received",
    "to",
    "return-path",
    "sender",
    "content-type",
    "mime-version",
)


def delivery_id_of_mail(payload: bytes) -> str:
    """Message-ID without brackets, or a digest of the bytes when the mail has none."""
    if not payload or not payload.strip():
        raise AdapterError("The body is empty: post the raw RFC 822 message", permanent=True)
    head = payload.lstrip()[:65536]
    if not _HEADER_LINE.match(head):
        raise AdapterError(
            "The body is not an email message: it must start with RFC 822 headers", permanent=True
        )
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    if not any(headers.get(name) for name in _MAIL_HEADERS):
        raise AdapterError(
            "The body is not an email message: no From, Message-ID, Date, Subject or MIME header",
            permanent=True,
        )
    message_id = str(headers.get("message-id") or "").strip().strip("<>").strip()
    if message_id and len(message_id) <= 200 and " " not in message_id:
        return message_id
    return "sha256:" + hashlib.sha256(payload).hexdigest()


class EmailAdapter(Adapter):
    kind = "email"

    def delivery_id(self, payload: bytes) -> str:
        return delivery_id_of_mail(payload)

    def parse(self, payload: bytes) -> list[InboundMessage]:
        return [parse_mail(payload, max_attachment_bytes=self.account.tenant.max_attachment_bytes)]

    def send(self, reply: OutboundReply) -> str:
        mailbox = self.account.mailbox
        message = reply.message
        headers = {"Message-ID": f"<{message.external_id}>"}
        thread = message.metadata.get("references") or []
        if thread:
            headers["In-Reply-To"] = f"<{thread[-1]}>"
            headers["References"] = " ".join(f"<{ref}>" for ref in thread)
        headers["X-Helpdesk-Ticket"] = str(message.ticket.number)
        email = EmailMultiAlternatives(
            subject=reply.subject,
            body=reply.text,
            from_email=formataddr((mailbox.from_name or self.account.tenant.name, mailbox.address)),
            to=[reply.to],
            headers=headers,
            connection=self._connection(),
        )
        if reply.html:
            email.attach_alternative(reply.html, "text/html")
        try:
            email.send(fail_silently=False)
        except (OSError, ValueError) as exc:  # smtplib errors are OSErrors
            permanent = getattr(exc, "smtp_code", 0) in {550, 551, 552, 553, 554}
            raise AdapterError(f"SMTP delivery failed: {exc}", permanent=permanent) from exc
        return message.external_id

    def _connection(self):  # type: ignore[no-untyped-def]
        mailbox = self.account.mailbox
        if not mailbox.smtp_host:
            return get_connection(fail_silently=False)
        return get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=mailbox.smtp_host,
            port=mailbox.smtp_port,
            username=mailbox.smtp_username or None,
            password=decrypt_secret(mailbox.smtp_password_encrypted) or None,
            use_tls=mailbox.smtp_use_tls and not mailbox.smtp_use_ssl,
            use_ssl=mailbox.smtp_use_ssl,
            timeout=30,
            fail_silently=False,
        )
